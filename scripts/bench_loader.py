"""Items per second of ``lincae_core.data`` against webdataset reading ``lincae export`` shards.

Builds seeded random stores (``store.synthetic``: the default model's geometry, float16, mono):
four stem stores of ``--tracks`` tracks of ``--frames`` frames. Measures, with the same batch size
and 0 and 2 DataLoader workers:

- ``LatentWindows`` random crops of ``--window`` frames from one store;
- ``LatentMixtures`` 4-stem mixtures (and targets) of the same windows, made on the fly;
- webdataset reading ``lincae export`` shards of the same windows (``wds.WebDataset`` ->
  ``decode`` -> ``to_tuple`` -> ``batched``, its own pipeline);
- a plain copy of the same bytes (batches of windows copied out of an in-memory array): the
  ceiling.

Rates are steady-state (timed from each loader's first batch). Prints items/s and the
ratios; the target is mixtures >= webdataset windows.

    python scripts/bench_loader.py [--tracks 64] [--frames 2048] [--window 64] [--batch 16] [--items 4096]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lincae_core.data import LatentMixtures, LatentWindows, collate
from lincae_core.ops.export import export_shards
from lincae_core.store.synthetic import synthetic_store

STEMS = ("vocals", "drums", "bass", "other")


def _rate(batches: Iterable[Any]) -> float:
    """Items per second in the steady state: timed from the first batch (worker start-up left out)."""
    it = iter(batches)
    first = next(it)
    t0, n = time.perf_counter(), 0
    for b in it:
        n += len(b["index"]) if isinstance(b, dict) else len(b[0])
    del first
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=64)
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--items", type=int, default=4096)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work or tempfile.mkdtemp(prefix="lincae-bench-loader-"))
    tracks = [(f"t{i:04d}", args.frames) for i in range(args.tracks)]
    stems = {}
    for j, name in enumerate(STEMS):
        path = work / f"{name}.zarr"
        if not path.exists():
            synthetic_store(path, tracks, seed=j, scale=0.3)
        stems[name] = path
    shards = work / "shards"
    if not shards.exists():
        w_s = args.window / 7.8125  # the synthetic geometry: 16 kHz / 2048 samples a frame
        export_shards(stems["vocals"], str(shards / "%04d.tar"), w_s, maxcount=256)
    shard_files = sorted(str(p) for p in shards.glob("*.tar"))
    n_export = sum(args.frames // args.window + (args.frames % args.window > 0) for _ in tracks)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; batch {args.batch}, "
        f"window {args.window} frames, {args.items} items (webdataset: the {n_export} exported windows)"
    )
    results: dict[str, float] = {}
    for workers in (0, 2):
        kw: dict[str, Any] = {"batch_size": args.batch, "num_workers": workers, "collate_fn": collate}
        win = LatentWindows(stems["vocals"], window_frames=args.window, length=args.items)
        results[f"windows, {workers} workers"] = _rate(DataLoader(win, **kw))
        mix = LatentMixtures(stems, window_frames=args.window, length=args.items, min_stems=4)
        results[f"4-stem mixtures, {workers} workers"] = _rate(DataLoader(mix, **kw))
        import webdataset as wds

        pipe = (
            wds.WebDataset(shard_files, shardshuffle=False, empty_check=False, nodesplitter=None)
            .decode()
            .to_tuple("latent.npy", "json")
            .batched(args.batch)
        )
        results[f"webdataset windows, {workers} workers"] = _rate(
            DataLoader(pipe, batch_size=None, num_workers=workers)
        )
    arr = np.asarray(
        LatentWindows(stems["vocals"], window_frames=1).sources[0].reader.read(0, args.tracks * args.frames)
    )
    rng = np.random.default_rng(0)
    starts = rng.integers(0, arr.shape[0] - args.window, size=args.items)
    t0 = time.perf_counter()
    for b in range(0, args.items, args.batch):
        np.stack([arr[s : s + args.window] for s in starts[b : b + args.batch]])
    results["plain copy of the same bytes"] = args.items / (time.perf_counter() - t0)
    print("| reader | items/s |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:,.0f} |")
    for w in (0, 2):
        m, d = results[f"4-stem mixtures, {w} workers"], results[f"webdataset windows, {w} workers"]
        x = results[f"windows, {w} workers"]
        print(f"ratio, {w} workers: mixtures / webdataset = {m / d:.2f}, windows / webdataset = {x / d:.2f}")


if __name__ == "__main__":
    main()
