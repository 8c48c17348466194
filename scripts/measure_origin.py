"""Linear or affine latent operations? Measure which is closer to the audio-domain operation.

For an affine encoder Enc(a·x) = a·Enc(x) + (1−a)·Enc(0) and Enc(u+v) = Enc(u) + Enc(v) − Enc(0),
so the plain ``a·z`` and ``z_u + z_v`` drift whenever the gains do not sum to one; the affine form
adds ``(1 − Σ g)·Enc(0)`` (docs/method.md §4.2). For each model and held-out track this script
compares both forms, for gain (a = 0.25, 0.5, 2), the sum of the four stems and the extraction of
the vocals by subtraction:

- in the latent domain, against the encoder's own latent of the audio-domain result (relative L2
  error to Enc(a·x), Enc(Σ stems), Enc(vocals));
- decoded, against the audio-domain operation on decoded audio (MSS and SNR against a·Dec(z),
  Σ Dec(z_i), Dec(Enc(vocals))).

It prints a Markdown table and, with --write-cards, records the comparison and the better form
(``origin_default``: the form with the lower decoded MSS averaged over the operations) in each
checkpoint's model_card.json (the weights, hence the model id, are untouched).

    python scripts/measure_origin.py --stems data/corpus16k/valid -c default -c models/baseline-tiny \
        --tracks 4 --seconds 10 --write-cards
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from lincae_core import InferenceConfig, decode, encode, load_model
from lincae_core.checkpoint import DEFAULT_MODEL_DIR
from lincae_core.encoding.origin import encode_origin
from lincae_core.evaluation.metrics import mss_distance, relative_error, snr
from lincae_core.publish import write_text_atomic

GAINS = (0.25, 0.5, 2.0)
STEMS = ("bass", "drums", "other", "vocals")


def load(track: Path, stem: str, seconds: float, rate: int) -> torch.Tensor:
    x, sr = sf.read(track / f"{stem}.wav", dtype="float32", always_2d=True)
    assert sr == rate, f"{track}: expected {rate} Hz audio, got {sr}"
    return torch.from_numpy(x[: int(seconds * rate)].mean(1))


def cases(model, track: Path, seconds: float):  # noqa: ANN001, ANN201
    """Yield (operation, gains sum, latent result (linear), latent target, audio target)."""
    rate = model.config.sample_rate
    stems = {s: load(track, s, seconds, rate) for s in STEMS}
    mix = sum(stems.values())
    n = mix.shape[-1]

    def dec(z: torch.Tensor) -> torch.Tensor:
        return decode(model, z, num_samples=n, seed=0)

    z = {s: encode(model, x) for s, x in stems.items()}
    z_mix = encode(model, mix)
    y_mix = dec(z_mix)
    for a in GAINS:
        yield f"gain {a:g}", a, a * z_mix, encode(model, a * mix), a * y_mix
    yield "sum of 4 stems", 4.0, sum(z.values()), z_mix, sum(dec(zi) for zi in z.values())
    others = [s for s in STEMS if s != "vocals"]
    z_voc = z_mix - sum(z[s] for s in others)
    yield "extract vocals", -2.0, z_voc, z["vocals"], dec(z["vocals"])


def measure(ckpt: str, stems_dir: Path, tracks: int, seconds: float) -> dict:
    model = load_model(ckpt)
    rate = model.config.sample_rate
    origin = torch.from_numpy(encode_origin(model, InferenceConfig(), 1).mean(0)[0])[:, None]  # [D, 1]
    rows: dict[str, dict[str, list[float]]] = {}
    for track in sorted(p for p in stems_dir.iterdir() if p.is_dir())[:tracks]:
        n = int(seconds * rate)
        for op, gsum, z_lin, z_target, y_target in cases(model, track, seconds):
            z_aff = z_lin + (1 - gsum) * origin
            r = rows.setdefault(op, {})
            for form, zf in (("linear", z_lin), ("affine", z_aff)):
                y = decode(model, zf, num_samples=n, seed=0)
                r.setdefault(f"{form}_latent_err", []).append(float(relative_error(zf[None], z_target[None])))
                r.setdefault(f"{form}_mss", []).append(float(mss_distance(y[None], y_target[None], rate)))
                r.setdefault(f"{form}_snr", []).append(float(snr(y[None], y_target[None])))
    table = {op: {k: float(np.mean(v)) for k, v in r.items()} for op, r in rows.items()}
    mean = {f: float(np.mean([t[f"{f}_mss"] for t in table.values()])) for f in ("linear", "affine")}
    return {
        "model_id": model.model_id,
        "table": table,
        "mean_mss": mean,
        "origin_default": min(mean, key=lambda f: (mean[f], f != "linear")),
        "data": {
            "stems_dir": str(stems_dir),
            "tracks": tracks,
            "seconds": seconds,
            "gains": list(GAINS),
            "decode_steps": 1,
            "seed": 0,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stems", type=Path, required=True)
    ap.add_argument("-c", "--checkpoint", action="append", default=[])
    ap.add_argument("--tracks", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--write-cards", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for ckpt in args.checkpoint or ["default"]:
        res = measure(ckpt, args.stems, args.tracks, args.seconds)
        print(f"\n### {ckpt} (model {res['model_id'][:12]}): default origin = {res['origin_default']}\n")
        print(
            "| operation | latent err linear | latent err affine | MSS linear | MSS affine | "
            "SNR linear | SNR affine |"
        )
        print("|---|---|---|---|---|---|---|")
        for op, t in res["table"].items():
            print(
                f"| {op} | {t['linear_latent_err']:.3f} | {t['affine_latent_err']:.3f} | "
                f"{t['linear_mss']:.3f} | {t['affine_mss']:.3f} | {t['linear_snr']:.2f} | "
                f"{t['affine_snr']:.2f} |"
            )
        print(f"| mean MSS | | | {res['mean_mss']['linear']:.3f} | {res['mean_mss']['affine']:.3f} | | |")
        if args.write_cards:
            path = (DEFAULT_MODEL_DIR if ckpt == "default" else Path(ckpt)) / "model_card.json"
            card = json.loads(path.read_text())
            card["origin_default"] = res["origin_default"]
            card.setdefault("measured", {})["origin_comparison"] = {
                k: res[k] for k in ("table", "mean_mss", "data", "origin_default")
            }
            write_text_atomic(path, json.dumps(card, indent=2) + "\n")
            print(f"\nwrote origin_default={res['origin_default']} into {path}")


if __name__ == "__main__":
    main()
