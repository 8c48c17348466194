"""Measure what ``LatentMixtures`` gives when decoded (docs/loading.md, "Fidelity").

Encodes the held-out stems excerpt (``lincae_core/demo_music``: 3 songs x 10 s, bass/drums/other/
vocals) with the default model into one store a stem (``lincae encode``), draws mixtures with
``LatentMixtures`` (whole tracks, 2-4 stems, gains in the card's trained range), decodes the
mixture latent with the origin term on (affine, the card's ``origin_default``) and off (linear),
and scores it against the audio-domain mixture of the same stems and gains and against
``Dec(Enc(audio mixture))``: SNR (dB, higher is better) and the paper's MSS (lower is better).

    python scripts/measure_loading.py [--items 12] [--steps N] [--work DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from lincae_core import LatentMixtures, decode, encode, load_model
from lincae_core.audio import load_audio
from lincae_core.evaluation.metrics import snr
from lincae_core.evaluation.spectral import mss_distance

STEMS = ("bass", "drums", "other", "vocals")
MUSIC = Path(__file__).resolve().parents[1] / "lincae_core" / "demo_music"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--steps", type=int, default=None, help="decode steps (default: the card's)")
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = Path(args.work or tempfile.mkdtemp(prefix="lincae-loading-"))
    songs = sorted(p.name for p in MUSIC.iterdir() if p.is_dir())
    for stem in STEMS:
        lib = work / "lib" / stem
        lib.mkdir(parents=True, exist_ok=True)
        for song in songs:
            link = lib / f"{song}.flac"
            if not link.exists():
                link.symlink_to(MUSIC / song / f"{stem}.flac")
        if not (work / f"{stem}.zarr").exists():
            subprocess.run(["lincae", "-q", "encode", str(lib), str(work / f"{stem}.zarr")], check=True)
    model = load_model()
    rate = model.config.sample_rate
    audio = {
        (s, song): load_audio(MUSIC / song / f"{s}.flac", rate).reshape(-1) for s in STEMS for song in songs
    }
    stems = {s: work / f"{s}.zarr" for s in STEMS}
    probe = LatentMixtures(stems, window_frames=1)
    frames = int(min(src.frames.min() for src in probe.sources))
    rows: dict[str, list[tuple[float, float]]] = {}
    for origin in ("affine", "linear"):
        ds = LatentMixtures(
            stems, window_frames=frames, length=args.items, seed=7, min_stems=2, origin=origin
        )
        for i in range(len(ds)):
            it = ds.item(i)
            song = it["key"]
            n = ds.sources[0].samples[ds.sources[0].index[song]]
            n = int(min(n, frames * ds.sources[0].geometry.samples_per_frame))
            g = it["gains"].numpy()
            mix = sum(float(g[j]) * audio[(s, song)][:n] for j, s in enumerate(STEMS))
            mix_t = torch.as_tensor(np.asarray(mix, np.float32))[None]
            y = decode(model, it["mixture"][None], num_samples=n, seed=0, steps=args.steps)[0]
            if origin == "affine":  # the reference autoencode, once per item (same items both ways)
                ae = decode(
                    model, encode(model, mix_t[None])[0][None], num_samples=n, seed=0, steps=args.steps
                )[0]
                rows.setdefault("Dec(Enc(audio mix)) vs audio mix", []).append(_score(ae, mix_t, rate))
                rows.setdefault("_ae", []).append((0.0, 0.0))
                _AE[i] = ae
            rows.setdefault(f"Dec(mix latent, {origin}) vs audio mix", []).append(_score(y, mix_t, rate))
            rows.setdefault(f"Dec(mix latent, {origin}) vs Dec(Enc(audio mix))", []).append(
                _score(y, _AE[i], rate)
            )
    print(
        f"{args.items} mixtures of 2-4 stems, 3 held-out songs x 10 s, default model, "
        f"gains in {ds.gain_range}"
    )
    print("| comparison | SNR dB (mean) | MSS (mean) |\n|---|---|---|")
    for name, vals in rows.items():
        if name.startswith("_"):
            continue
        a = np.asarray(vals)
        print(f"| {name} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.3f} |")
    _saliency(model, stems, rate)
    sys.stdout.flush()


def _saliency(model: object, stems: dict[str, Path], rate: int) -> None:
    """RMS distance to Enc(0) (``lincae_core.data.windows.saliency``) of every 1-s window of the
    stem stores, and of encoded digital silence and quiet noise: where SALIENT_RMS sits."""
    from lincae_core.data.windows import SALIENT_RMS, LatentWindows, saliency

    ds = LatentWindows(list(stems.values()), window_s=1.0, random_crop=False)
    o = ds.sources[0].origin
    vals = []
    for i in range(len(ds)):
        it = ds.item(i)
        vals.append(saliency(it["latents"].numpy().transpose(2, 0, 1), o, it["padding_mask"].numpy()))
    v = np.asarray(vals)
    print(
        f"\nsaliency of {len(v)} 1-s stem windows: percentiles 1/5/25/50: "
        + ", ".join(f"{x:.3f}" for x in np.percentile(v, [1, 5, 25, 50]))
        + f"; below SALIENT_RMS={SALIENT_RMS}: {np.mean(v < SALIENT_RMS):.1%}"
    )
    rng = np.random.default_rng(0)
    for name, db in (
        ("digital silence", None),
        ("noise -60 dBFS", -60),
        ("noise -40 dBFS", -40),
        ("noise -20 dBFS", -20),
    ):
        x = (
            np.zeros(rate * 3, np.float32)
            if db is None
            else (rng.standard_normal(rate * 3) * 10 ** (db / 20)).astype(np.float32)
        )
        z = encode(model, torch.as_tensor(x)[None, None])[0].numpy().transpose(2, 0, 1)  # [F, C, D]
        print(f"saliency of {name}: {saliency(z, o, np.ones(z.shape[0], bool)):.3f}")


_AE: dict[int, torch.Tensor] = {}


def _score(est: torch.Tensor, ref: torch.Tensor, rate: int) -> tuple[float, float]:
    est, ref = est.reshape(1, -1), ref.reshape(1, -1)
    return float(snr(est, ref).mean()), float(mss_distance(est, ref, sample_rate=rate).mean())


if __name__ == "__main__":
    main()
