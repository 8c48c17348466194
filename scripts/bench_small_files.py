"""Throughput of ``encode_files`` on many small files (issue 13 item 6): files per second and
where the time goes.

Generates N files of S seconds (seeded 'music', 44.1 kHz FLAC by default) in a temporary
directory, encodes them with the embedded default model (or ``--preset``, random weights) into a
fresh store, once with chunk-batched latent writes (the default) and once with one write per
track (``EncodeSettings(chunk_writes=False)``), in one process, and prints files/s, seconds and the
top cProfile entries (cumulative time) of each.

Usage::

    python scripts/bench_small_files.py                       # 5000 x 0.5 s
    python scripts/bench_small_files.py --files 500 --top 25  # quicker
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from lincae_core.config import InferenceConfig, get_preset
from lincae_core.discovery import discover
from lincae_core.encoding.job import encode_files
from lincae_core.encoding.settings import EncodeSettings
from lincae_core.models import load_model
from lincae_core.nn.model import LinCAE


def make_files(root: Path, n: int, seconds: float, rate: int, fmt: str) -> None:
    """``n`` seeded short signals (a few tones and noise, peak 0.5)."""
    t = np.arange(int(rate * seconds)) / rate
    for i in range(n):
        rng = np.random.default_rng(i)
        x = 0.05 * rng.standard_normal(t.shape)
        for f in rng.uniform(80, 2000, 3):
            x += 0.1 * np.sin(2 * np.pi * f * t)
        sf.write(root / f"f{i:05d}.{fmt}", (0.5 * x / np.abs(x).max()).astype(np.float32), rate)


_STORE_WRITES = {"write_track", "write_tracks", "mark_done", "write_loudness"}


def run(
    lib: Path, out: Path, model: LinCAE, inference: InferenceConfig, settings: EncodeSettings, top: int
) -> dict[str, Any]:
    """One profiled encode of ``lib`` into a fresh store."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    summary = encode_files(discover(lib), out, model, inference, settings)
    prof.disable()
    wall = time.perf_counter() - t0
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    store_s = sum(
        v[3]
        for k, v in stats.stats.items()  # type: ignore[attr-defined]
        if k[0].endswith("latent_store.py") and k[2] in _STORE_WRITES
    )
    stats.sort_stats("cumulative").print_stats(top)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return {
        "files": summary.encoded,
        "failed": summary.failed,
        "wall_s": wall,
        "files_per_s": summary.encoded / wall,
        "model_s": summary.model_seconds,
        "store_write_s": store_s,
        "other_s": wall - summary.model_seconds - store_s,
        "batch_size": summary.batch_size,
        "profile": lines[start:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--rate", type=int, default=44100)
    p.add_argument("--format", default="flac", choices=["flac", "wav"])
    p.add_argument("--preset", default=None, help="random weights of a preset (default: the embedded model)")
    p.add_argument("--batch-size", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--top", type=int, default=20, help="profile lines to print")
    p.add_argument("--modes", default="chunk,track", help="chunk (batched writes), track (per-track)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    a = p.parse_args()

    torch.set_grad_enabled(False)
    if a.preset:
        torch.manual_seed(0)
        model = LinCAE(get_preset(a.preset)).eval()
        model.model_id = f"bench-{a.preset}"  # type: ignore[assignment]
    else:
        model = load_model(None, "cpu")
    batch = a.batch_size if a.batch_size == "auto" else int(a.batch_size)
    inference = InferenceConfig(batch_size=batch)
    results: dict[str, Any] = {
        "args": vars(a) | {"out": str(a.out)},
        "torch_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        lib = tmp / "lib"
        lib.mkdir()
        t0 = time.perf_counter()
        make_files(lib, a.files, a.seconds, a.rate, a.format)
        print(f"generated {a.files} files of {a.seconds} s in {time.perf_counter() - t0:.1f} s", flush=True)
        for mode in a.modes.split(","):
            settings = EncodeSettings(workers=a.workers, chunk_writes=mode == "chunk")
            r = run(lib, tmp / f"{mode}.zarr", model, inference, settings, a.top)
            results[mode] = r
            print(
                f"\n[{mode} writes] {r['files']} files in {r['wall_s']:.1f} s: "
                f"{r['files_per_s']:.1f} files/s "
                f"({r['files'] * a.seconds / r['wall_s']:.1f}x real time; model {r['model_s']:.1f} s, "
                f"store writes and marks {r['store_write_s']:.2f} s, the rest {r['other_s']:.1f} s; "
                f"batch size {r['batch_size']}, {r['failed']} failed)"
            )
            print("\n".join(r["profile"]))
        if "chunk" in results and "track" in results:
            c, t = results["chunk"], results["track"]
            print(
                f"\nchunk-batched writes / per-track writes: {c['files_per_s'] / t['files_per_s']:.2f}x "
                f"files/s; store writes and marks {t['store_write_s']:.2f} s -> {c['store_write_s']:.2f} s "
                "(the model time varies with the machine's load; compare the write times)"
            )
    if a.out:
        a.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
