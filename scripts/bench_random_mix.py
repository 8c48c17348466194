"""Random mixtures against keyed mixtures on the same stores, with and without the chunk cache.

Prints seconds and the ratio random / keyed within one run (the machine is shared: only ratios
mean something). The stores are made with the public store API: N tracks x F frames, mono,
64-dim float16, 4096-frame chunks.

    python scripts/bench_random_mix.py --tracks 20000 --frames 40
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lincae_core import LatentStore, mix_stores
from lincae_core.store.synthetic import synthetic_store

GEOMETRY = {"sample_rate": 16000, "samples_per_frame": 2048, "latent_dim": 64}


def make(path: Path, n: int, frames: int, seed: int) -> None:
    synthetic_store(path, [(f"t{i:07d}", frames) for i in range(n)], seed=seed)


def timed(label: str, fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label:38s} {dt:8.2f} s")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=20000)
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lincae-bench-"))
    try:
        make(work / "a.zarr", args.tracks, args.frames, 1)
        make(work / "b.zarr", args.tracks, args.frames, 2)
        mb = 2 * args.tracks * args.frames * 64 * 2 / 1e6
        print(f"two stores of {args.tracks} tracks x {args.frames} frames ({mb:.0f} MB in all)")
        ins = [work / "a.zarr", work / "b.zarr"]
        keyed = timed("mix by key", lambda: mix_stores(ins, work / "k.zarr"))
        cached = timed(
            "mix --pair random (chunk cache 1 GiB)",
            lambda: mix_stores(ins, work / "r.zarr", pair="random", seed=1),
        )
        os.environ["LINCAE_CHUNK_CACHE_MB"] = "0"
        plain = timed(
            "mix --pair random (no cache)", lambda: mix_stores(ins, work / "r0.zarr", pair="random", seed=1)
        )
        os.environ.pop("LINCAE_CHUNK_CACHE_MB")
        same = np.array_equal(
            LatentStore.open(work / "r.zarr").read_track(0), LatentStore.open(work / "r0.zarr").read_track(0)
        )
        print(
            f"random/keyed: {cached / keyed:.2f}x with the cache, {plain / keyed:.2f}x without; "
            f"cache speed-up {plain / cached:.1f}x; identical outputs: {same}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
