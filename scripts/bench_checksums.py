"""Measure what per-chunk checksums (``encode --checksums``: Zarr v3's crc32c codec) cost.

Builds, within one run, stores of ``--size-gb`` of synthetic float16 latents (the default
model's geometry: 64-dim mono, tracks of 500-5000 frames, 16384-frame chunks or, with
``--chunks-per-object K``, Zarr shards of K chunks) without and with checksums, and times, each
in a fresh subprocess with torch and the ops engine imported before the clock starts,
interleaved (without then crc32c, then the other way round), ``--repeat`` times (medians):

- ``write``: creating and planning the store and writing every latent (whole chunks, as an
  encode's chunk writes do; the latents are one block of random values made before the clock);
- ``read``: one pass of ``LatentArray.read`` over the whole store, block by block;
- ``gain``: ``ops.gain_store`` (read, scale, write a new store: its output keeps the input's
  checksums, so the crc32c run checks and writes them);
- ``short reads``: ``--short-reads`` reads of 40 frames at seeded random places (a loader or a
  decode of single tracks without the chunk cache: with checksums the first read of a chunk in
  a process reads and checks the whole chunk);
- ``verify``: ``lincae verify`` (``verify_store``): without checksums one listing of the chunk
  files and their sizes, with them every chunk read and checked.

Every ratio is crc32c / without, taken within the run (the page cache's state moves absolute
figures between runs), of the wall seconds and of the CPU seconds (user + system, every thread of
the measuring process: what the checksums add to the work, less moved by other processes on a
shared machine than the wall time). The stores fit the page cache: these are warm reads, where
the CRC's CPU cost shows most.

Usage:  python scripts/bench_checksums.py --size-gb 0.5 --repeat 6 [--chunks-per-object 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lincae_core.store.synthetic import SYNTHETIC_GEOMETRY  # noqa: E402

BLOCK = 16 * 16384  # frames a write or read call (16 default chunks)
KINDS = ("write", "read", "gain", "short reads", "verify")


def track_lengths(size_gb: float) -> list[int]:
    """Track lengths (frames) of about ``size_gb`` GB of 64-dim float16 latents."""
    rng = np.random.default_rng(0)
    total, lengths = int(size_gb * 1e9 / (2 * SYNTHETIC_GEOMETRY["latent_dim"])), []
    while sum(lengths) < total:
        lengths.append(int(rng.integers(500, 5000)))
    return lengths


def write_store(path: Path, lengths: list[int], checksums: bool, per_object: int) -> tuple[float, float]:
    """Create, plan and fill a store (what ``write`` times), all tracks done."""
    from lincae_core.store import LatentStore
    from lincae_core.store.layout import PlanRow

    d = SYNTHETIC_GEOMETRY["latent_dim"]
    block = np.random.default_rng(1).standard_normal((BLOCK, 1, d), dtype=np.float32).astype(np.float16)
    t0, c0 = time.perf_counter(), cpu_seconds()
    s = LatentStore.create(
        path,
        model_id="bench",
        model_config={"name": "bench"},
        geometry=SYNTHETIC_GEOMETRY,
        channels=1,
        checksums=checksums,
        chunks_per_object=per_object,
    )
    spf = SYNTHETIC_GEOMETRY["samples_per_frame"]
    s.plan([PlanRow(f"t{i:06d}", n, n * spf - 100, 16000, 1) for i, n in enumerate(lengths)])
    for b0 in range(0, s.total_frames, BLOCK):
        s.latents.write(b0, block[: min(BLOCK, s.total_frames - b0)])
    s.mark_done(np.arange(s.n_tracks))
    return time.perf_counter() - t0, cpu_seconds() - c0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(
    kind: str, store: Path, work: Path, lengths: list[int], args: argparse.Namespace
) -> tuple[float, float]:
    """Run one measured pass in this (fresh) process; return its wall and CPU seconds."""
    import torch  # noqa: F401

    from lincae_core import ops
    from lincae_core.ops import engine, levels  # noqa: F401
    from lincae_core.store import LatentArray, LatentStore
    from lincae_core.store.damage import verify_store

    if kind == "write":
        return write_store(work / "w.zarr", lengths, store.name.endswith("crc.zarr"), args.chunks_per_object)
    t0, c0 = time.perf_counter(), cpu_seconds()
    if kind == "read":
        lat = LatentArray.open(store)
        buf = np.empty((BLOCK, *lat.shape[1:]), lat.dtype)
        for b0 in range(0, lat.shape[0], BLOCK):
            lat.read(b0, min(b0 + BLOCK, lat.shape[0]), buf)
    elif kind == "gain":
        ops.gain_store(store, work / "g.zarr", 0.5)
    elif kind == "short reads":
        lat = LatentArray.open(store)
        starts = np.random.default_rng(2).integers(0, lat.shape[0] - 40, args.short_reads)
        for a in starts.tolist():
            lat.read(a, a + 40)
    else:
        report = verify_store(LatentStore.open(store))
        assert not report.damaged, report.damaged
    return time.perf_counter() - t0, cpu_seconds() - c0


def run_child(kind: str, store: Path, work: Path, args: argparse.Namespace) -> tuple[float, float]:
    for old in ("w.zarr", "g.zarr"):  # removing the last output is not part of any pass
        shutil.rmtree(work / old, ignore_errors=True)
    os.sync()  # no dirty pages of the previous pass left to write back during this one
    cmd = [sys.executable, __file__, "--child", kind, "--store", str(store), "--dir", str(work)]
    cmd += ["--size-gb", str(args.size_gb), "--chunks-per-object", str(args.chunks_per_object)]
    cmd += ["--short-reads", str(args.short_reads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(got["seconds"]), float(got["cpu_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--chunks-per-object", type=int, default=1)
    ap.add_argument("--short-reads", type=int, default=2000)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    lengths = track_lengths(args.size_gb)
    if args.child:
        seconds, cpu = child(args.child, Path(args.store), Path(args.dir), lengths, args)
        print(json.dumps({"seconds": seconds, "cpu_s": cpu}))
        return
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-checksums-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        stores = {"without": work / "plain.zarr", "crc32c": work / "crc.zarr"}
        for name, path in stores.items():
            shutil.rmtree(path, ignore_errors=True)
            write_store(path, lengths, name == "crc32c", args.chunks_per_object)
        frames = sum(lengths)
        print(
            f"{len(lengths)} tracks, {frames} frames, {frames * 128 / 1e9:.3f} GB of latents a store; "
            f"chunks per object {args.chunks_per_object}; {os.cpu_count()} CPUs; medians of {args.repeat}"
        )
        runs: dict[str, dict[str, list[tuple[float, float]]]] = {k: {n: [] for n in stores} for k in KINDS}
        for rep in range(args.repeat):
            for kind in KINDS:  # without first, then crc32c first: the order's own effect cancels
                for name in list(stores)[:: 1 if rep % 2 == 0 else -1]:
                    runs[kind][name].append(run_child(kind, stores[name], work, args))
        result = {}
        head = f"{'without':>8s} {'crc32c':>8s} {'ratio':>6s}"
        print(f"{'':12s} {'wall s':>17s} {'':6s} {'CPU s':>17s}\n{'':12s} {head} {head}")
        for kind in KINDS:
            wall = [statistics.median(t[0] for t in runs[kind][n]) for n in stores]
            cpu = [statistics.median(t[1] for t in runs[kind][n]) for n in stores]
            result[kind] = {"wall_s": wall, "cpu_s": cpu, "runs": runs[kind]}
            print(
                f"{kind:12s} {wall[0]:8.3f} {wall[1]:8.3f} {wall[1] / wall[0]:5.2f}x "
                f"{cpu[0]:8.3f} {cpu[1]:8.3f} {cpu[1] / cpu[0]:5.2f}x   "
                f"{kind} with crc32c / without: {wall[1] / wall[0]:.2f}x wall, {cpu[1] / cpu[0]:.2f}x CPU"
            )
        if args.out:
            Path(args.out).write_text(json.dumps({"size_gb": args.size_gb, "results": result}, indent=1))
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
