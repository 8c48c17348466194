"""Reconstruction quality against the encode/decode window length (chooses InferenceConfig defaults).

For each (window, overlap), encode and decode a few tracks with ``inference.encode``/``inference.decode`` and
score the reconstruction (SNR, multi-scale mel distance) against the original, next to the
single-pass reference (one window covering the whole track). Prints a table; writes JSON.

    python scripts/bench_windows.py --audio data/corpus16k/valid --checkpoint lincae_core/default_model
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lincae_core.audio import load_audio
from lincae_core.config import InferenceConfig
from lincae_core.evaluation import metrics
from lincae_core.inference import decode as decode_audio
from lincae_core.inference import encode as encode_audio
from lincae_core.models import load_model


def _tracks(root: Path, n: int, seconds: float, rate: int) -> list[np.ndarray]:
    files = sorted(root.rglob("mixture.wav")) or sorted(root.rglob("*.wav"))
    out = []
    for f in files[:n]:
        x = load_audio(f, rate)[0]
        out.append(x[: int(seconds * rate)])
    return out


def _score(model, tracks, inference) -> dict[str, float]:  # noqa: ANN001
    snr, mss, t0 = [], [], time.perf_counter()
    for x in tracks:
        z = encode_audio(model, torch.from_numpy(x), inference)
        y = decode_audio(model, z, x.shape[-1], inference, seed=0)
        ref = torch.from_numpy(x)[None]
        snr.append(float(metrics.snr(y[None], ref)[0]))
        mss.append(float(metrics.mss_distance(y[None], ref, model.config.sample_rate)[0]))
    return {"snr_db": float(np.mean(snr)), "mss": float(np.mean(mss)), "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--audio", type=Path, required=True, help="folder of audio (mixture.wav files preferred)")
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded model)")
    p.add_argument("--tracks", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--windows", default="1,2,4,8,16")
    p.add_argument("--overlap-fraction", type=float, default=0.1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    model = load_model(args.checkpoint)
    tracks = _tracks(args.audio, args.tracks, args.seconds, model.config.sample_rate)
    rows = [
        {
            "window_s": "full",
            "overlap_s": 0.0,
            **_score(model, tracks, InferenceConfig(window_s=1e4, overlap_s=1)),
        }
    ]
    for w in (float(v) for v in args.windows.split(",")):
        ov = max(w * args.overlap_fraction, 1.0 / model.config.frame_rate)
        rows.append(
            {
                "window_s": w,
                "overlap_s": round(ov, 3),
                **_score(model, tracks, InferenceConfig(window_s=w, overlap_s=ov)),
            }
        )
    print(f"model {model.model_id[:12]} ({model.config.name}); {len(tracks)} tracks x {args.seconds:.0f} s")
    print("| window (s) | overlap (s) | SNR (dB) | MSS | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['window_s']} | {r['overlap_s']} | {r['snr_db']:.2f} | {r['mss']:.3f} "
            f"| {r['seconds']:.1f} |"
        )
    if args.out:
        args.out.write_text(json.dumps({"model_id": model.model_id, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
