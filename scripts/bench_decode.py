"""Benchmark ``lincae decode`` (store -> WAV files) against ``linear-cae``: ratios measured in one run.

For each library shape ('songs': a few long tracks; 'clips': many short ones) and each step count,
the same random ``tiny`` weights in both implementations (the reference ``Autoencoder`` with
``scale_factor=1``, so its latents are lincae's raw latents):

1. lincae: ``decode_store`` of a store encoded from the library (the defaults: windows of several
   tracks per pass, one pass per core at once), WAV files written;
2. lincae as it decoded before batching: track by track through ``inference.iter_decode`` with the
   default batch of 8 windows on torch's threads, WAV files written;
3. ``linear_cae.Autoencoder.decode`` of each track's chunked latents (its own ``encode``, chunks
   of the same window and overlap, ``max_batch_size`` 8), one track at a time as its API takes
   them, WAV files written with soundfile; with ``--ref-one-thread`` also on one torch thread
   (on a loaded machine two OpenMP threads lose most, so this is the fairer reference there).

Timings are best of ``--repeats``, alternating the three, so that a noisy machine hits all alike;
the table prints x real time and the ratios. The load average is recorded before and after.

Usage::

    python scripts/bench_decode.py --preset tiny --out bench_decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import build_models, make_signal  # noqa: E402

from lincae_core.audio import load_audio  # noqa: E402
from lincae_core.config import InferenceConfig, ModelConfig, get_preset  # noqa: E402
from lincae_core.decoding import decode_store  # noqa: E402
from lincae_core.device import resolve_device, torch_threads  # noqa: E402
from lincae_core.discovery import discover  # noqa: E402
from lincae_core.encoding.job import encode_files  # noqa: E402
from lincae_core.inference import iter_decode  # noqa: E402
from lincae_core.nn.model import LinCAE  # noqa: E402
from lincae_core.store import LatentStore  # noqa: E402
from lincae_core.windowing import window_span  # noqa: E402


def make_library(root: Path, n: int, seconds: float, rate: int, seed: int) -> Path:
    root.mkdir()
    for i in range(n):
        sf.write(root / f"t{i:03d}.wav", make_signal(rate, seconds, seed=seed + i), rate, subtype="FLOAT")
    return root


def ours(
    store: Path, out: Path, model: LinCAE, steps: int, inference: InferenceConfig, jobs: int | None
) -> float:
    t0 = time.perf_counter()
    decode_store(store, out, model, steps=steps, inference=inference, overwrite=True, jobs=jobs)
    return time.perf_counter() - t0


def before(store_path: Path, out: Path, model: LinCAE, steps: int, inference: InferenceConfig) -> float:
    """The decode before batching: one track at a time, ``iter_decode``, torch's threads."""
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    store = LatentStore.open(store_path)
    for t in store.tracks(status=1):
        z = store.read_track(t.key).astype(np.float32).transpose(1, 2, 0)
        with sf.SoundFile(out / f"{t.key}.wav", "w", model.config.sample_rate, store.channels, "PCM_16") as f:
            for block in iter_decode(model, z, t.samples, inference, 0, steps):
                f.write(np.clip(block, -1, 1).T)
    return time.perf_counter() - t0


def reference(ref: Any, latents: list[tuple[torch.Tensor, int]], out: Path, rate: int, steps: int) -> float:
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for i, (z, n) in enumerate(latents):
        y = ref.decode(z, full_length=n, diffusion_steps=steps)
        y = y[..., :n].float().cpu().numpy().reshape(-1)
        sf.write(out / f"t{i:03d}.wav", np.clip(y, -1, 1), rate, subtype="PCM_16")
    return time.perf_counter() - t0


def reference_latents(
    ref: Any, lib: Path, cfg: ModelConfig, inference: InferenceConfig, batch: int
) -> list[tuple[torch.Tensor, int]]:
    """linear-cae's own chunked latents of each file (chunks of the same window and overlap)."""
    window, overlap = inference.frames(cfg)
    a, b = window_span(0, window, cfg)
    chunk, step = b - a, (window - overlap) * cfg.samples_per_frame
    ref.max_chunk_size, ref.max_batch_size = chunk, batch
    ref.overlap_percentage = (chunk - step + 0.5) / chunk  # int(chunk * p) == chunk - step
    out = []
    with torch.no_grad():
        for f in sorted(lib.glob("*.wav")):
            x = torch.from_numpy(load_audio(f, cfg.sample_rate))
            out.append((ref.encode(x), x.shape[-1]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--songs", type=int, default=4)
    p.add_argument("--song-seconds", type=float, default=60.0)
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--steps", default="1,3", help="step counts to time")
    p.add_argument("--jobs", type=int, default=0, help="lincae's passes at once (0: one per core)")
    p.add_argument("--batch-size", default="auto", help="lincae's windows per pass")
    p.add_argument("--ref-batch-size", type=int, default=8, help="linear-cae's max_batch_size")
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--overlap", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2, help="best of N for each timing")
    p.add_argument("--skip-before", action="store_true", help="do not time the decode before batching")
    p.add_argument(
        "--ref-one-thread",
        action="store_true",
        help="also time linear-cae on one torch thread (two threads suffer most on a loaded machine)",
    )
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()

    device = resolve_device("cpu")
    cfg = get_preset(a.preset)
    torch.set_grad_enabled(False)
    model, ref = build_models(cfg, device, False)
    batch: int | str = a.batch_size if a.batch_size == "auto" else int(a.batch_size)
    inference = InferenceConfig(window_s=a.window, overlap_s=a.overlap, batch_size=batch)
    old = InferenceConfig(window_s=a.window, overlap_s=a.overlap)  # batch 8, as before
    result: dict[str, Any] = {
        "preset": a.preset,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "args": {k: str(v) for k, v in vars(a).items()},
        "load_before": os.getloadavg(),
    }
    shapes = {"songs": (a.songs, a.song_seconds), "clips": (a.clips, a.clip_seconds)}
    rate = cfg.sample_rate
    rows = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for name, (n, seconds) in shapes.items():
            lib = make_library(tmp / name, n, seconds, rate, 0 if name == "songs" else 1000)
            store = tmp / f"{name}.zarr"
            encode_files(discover(lib), store, model, InferenceConfig(window_s=a.window, overlap_s=a.overlap))
            lat = reference_latents(ref, lib, cfg, old, a.ref_batch_size)
            audio_s = n * seconds
            for steps in [int(s) for s in a.steps.split(",")]:
                times: dict[str, list[float]] = {
                    "lincae": [],
                    "before": [],
                    "linear-cae": [],
                    "linear-cae-1t": [],
                }
                for r in range(a.repeats):
                    times["lincae"].append(
                        ours(store, tmp / f"o-{name}", model, steps, inference, a.jobs or None)
                    )
                    if not a.skip_before:
                        times["before"].append(before(store, tmp / f"b-{name}", model, steps, old))
                    times["linear-cae"].append(reference(ref, lat, tmp / f"r-{name}", rate, steps))
                    if a.ref_one_thread:
                        with torch_threads(1):
                            times["linear-cae-1t"].append(reference(ref, lat, tmp / f"r-{name}", rate, steps))
                    print(
                        f"  {name} {steps} step(s) run {r + 1}: "
                        + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v),
                        flush=True,
                    )
                best = {k: min(v) for k, v in times.items() if v}
                row = {
                    "shape": name,
                    "steps": steps,
                    "audio_s": audio_s,
                    "seconds": times,
                    "x_realtime": {k: audio_s / v for k, v in best.items()},
                    "vs_linear_cae": best["linear-cae"] / best["lincae"],
                }
                if "linear-cae-1t" in best:
                    row["vs_linear_cae_one_thread"] = best["linear-cae-1t"] / best["lincae"]
                if "before" in best:
                    row["before_vs_linear_cae"] = best["linear-cae"] / best["before"]
                    row["speedup_vs_before"] = best["before"] / best["lincae"]
                rows.append(row)
    result["rows"] = rows
    result["load_after"] = os.getloadavg()
    load = f"load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}"
    print(f"\ndecode, {a.preset}, CPU x{os.cpu_count()}, {load}")
    print(
        f"{'shape':<7}{'steps':>6}{'lincae':>10}{'before':>10}{'linear-cae':>12}{'ratio':>8}{'was':>7}"
        + f"{'1-thread ref':>14}"
    )
    for r in rows:
        x = r["x_realtime"]
        print(
            f"{r['shape']:<7}{r['steps']:>6}{x['lincae']:>9.1f}x"
            + (f"{x['before']:>9.1f}x" if "before" in x else f"{'-':>10}")
            + f"{x['linear-cae']:>11.1f}x{r['vs_linear_cae']:>7.2f}x"
            + (f"{r['before_vs_linear_cae']:>6.2f}x" if "before" in x else f"{'-':>7}")
            + (
                f"{x['linear-cae-1t']:>7.1f}x {r['vs_linear_cae_one_thread']:.2f}x"
                if "linear-cae-1t" in x
                else ""
            )
        )
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
