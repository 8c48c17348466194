"""Items per second of ``lincae_core.data`` against webdataset reading ``lincae export`` shards.

Builds seeded random stores (``store.synthetic``: the default model's geometry, float16, mono):
four stem stores of ``--tracks`` tracks of ``--frames`` frames. Measures, with the same batch size
and window, 0 and 2 DataLoader workers:

- ``LatentWindows`` random crops of ``--window`` frames from one store, batched by the DataLoader
  (``batch_size=B, collate_fn=collate``) and made as whole batches by the dataset
  (``LatentWindows(…, batch_size=B)`` under ``DataLoader(batch_size=None)``);
- ``LatentMixtures`` 4-stem mixtures and their 4 targets of the same windows, made on the fly,
  both ways, and as whole batches in float16 (``dtype="float16"``: the dtype webdataset returns);
- webdataset reading ``lincae export`` shards of the same windows with its own pipeline
  (``wds.WebDataset`` -> ``decode`` -> ``to_tuple`` -> ``batched(B)`` under
  ``DataLoader(batch_size=None)``);
- a plain copy of the same bytes (batches of windows copied out of an in-memory array): the
  ceiling.

What one batch of ``B`` holds: webdataset, the exported float16 windows ``[B, C*D, T]`` and ``B``
JSON records; windows, float32 ``latents [B, C, D, T]``, ``padding_mask`` and the item fields;
mixtures, float32 ``mixture [B, C, D, T]`` and ``targets [B, 4, C, D, T]`` (ten times the bytes of
the webdataset batch), ``present``, ``gains``, ``padding_mask`` and the item fields.

The readers run interleaved (their order rotated each round), ``--repeat`` rounds, so a machine
shared with other work slows every side alike; each round prints its ratios and the load average.
Rates are steady-state (timed from each loader's first batch); "CPU us/item" is the processor time
of the main process and its workers together per item (Linux ``/proc``), steadier than rates on a
busy machine. The target is mixtures >= webdataset windows.

    python scripts/bench_loader.py [--tracks 64] [--frames 2048] [--window 64] [--batch 16]
                                   [--items 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lincae_core.data import LatentMixtures, LatentWindows, collate
from lincae_core.ops.export import export_shards
from lincae_core.store.synthetic import synthetic_store

STEMS = ("vocals", "drums", "bass", "other")


def _cpu_seconds(pid: int) -> float:
    """User + system time of a live process (Linux), 0 where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rate(batches: Iterable[Any]) -> tuple[float, float]:
    """Items per second in the steady state (timed from the first batch: worker start-up left
    out) and processor microseconds per item, main process and workers together."""
    it = iter(batches)
    first = next(it)
    pids = [w.pid for w in getattr(it, "_workers", [])]
    w0 = {p: _cpu_seconds(p) for p in pids}
    w1 = dict(w0)
    c0, t0, n = time.process_time(), time.perf_counter(), 0
    for b in it:
        n += len(b["index"]) if isinstance(b, dict) else len(b[0])
        w1 = {p: _cpu_seconds(p) for p in pids}  # read while the workers live
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu += sum(w1[p] - w0[p] for p in pids)
    del first
    return n / wall, cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=64)
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--items", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
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
        f"{os.cpu_count()} cores; batch {args.batch}, window {args.window} frames, {args.items} items "
        f"(webdataset: the {n_export} exported windows); {args.repeat} interleaved rounds"
    )
    B, W = args.batch, args.window

    def webdataset(workers: int) -> DataLoader:
        import webdataset as wds

        pipe = (
            wds.WebDataset(shard_files, shardshuffle=False, empty_check=False, nodesplitter=None)
            .decode()
            .to_tuple("latent.npy", "json")
            .batched(B)
        )
        return DataLoader(pipe, batch_size=None, num_workers=workers)

    def windows(batched: bool) -> Callable[[int], DataLoader]:
        def make(workers: int) -> DataLoader:
            if batched:
                ds = LatentWindows(stems["vocals"], window_frames=W, length=args.items, batch_size=B)
                return DataLoader(ds, batch_size=None, num_workers=workers)
            ds = LatentWindows(stems["vocals"], window_frames=W, length=args.items)
            return DataLoader(ds, batch_size=B, num_workers=workers, collate_fn=collate)

        return make

    def mixtures(batched: bool, dtype: str = "float32") -> Callable[[int], DataLoader]:
        def make(workers: int) -> DataLoader:
            kw: dict[str, Any] = {"window_frames": W, "length": args.items, "min_stems": 4, "dtype": dtype}
            if batched:
                ds = LatentMixtures(stems, batch_size=B, **kw)
                return DataLoader(ds, batch_size=None, num_workers=workers)
            return DataLoader(
                LatentMixtures(stems, **kw), batch_size=B, num_workers=workers, collate_fn=collate
            )

        return make

    readers: dict[str, Callable[[int], DataLoader]] = {
        "webdataset windows": webdataset,
        "4-stem mixtures (collate)": mixtures(False),
        "4-stem mixtures (batch_size)": mixtures(True),
        "4-stem mixtures (batch_size, float16)": mixtures(True, "float16"),
        "windows (collate)": windows(False),
        "windows (batch_size)": windows(True),
    }
    names = list(readers)
    rates: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    loads: list[float] = []
    for r in range(args.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        load = os.getloadavg()[0]
        for workers in (0, 2):
            got = {}
            for name in order:
                rate, cpu = _rate(readers[name](workers))
                rates.setdefault((name, workers), []).append(rate)
                cpus.setdefault((name, workers), []).append(cpu)
                got[name] = rate
            wds_rate = got["webdataset windows"]
            print(
                f"round {r + 1}, {workers} workers: mixtures / webdataset = "
                f"{got['4-stem mixtures (collate)'] / wds_rate:.2f} (collate), "
                f"{got['4-stem mixtures (batch_size)'] / wds_rate:.2f} (batch_size); windows / webdataset = "
                f"{got['windows (collate)'] / wds_rate:.2f}, {got['windows (batch_size)'] / wds_rate:.2f}",
                flush=True,
            )
        load = (load + os.getloadavg()[0]) / 2
        loads.append(load)
        print(f"round {r + 1}: load average {load:.2f}", flush=True)
    arr = np.asarray(
        LatentWindows(stems["vocals"], window_frames=1).sources[0].reader.read(0, args.tracks * args.frames)
    )
    rng = np.random.default_rng(0)
    starts = rng.integers(0, arr.shape[0] - args.window, size=args.items)
    t0 = time.perf_counter()
    for b in range(0, args.items, args.batch):
        np.stack([arr[s : s + args.window] for s in starts[b : b + args.batch]])
    copy = args.items / (time.perf_counter() - t0)
    med = statistics.median
    print(f"\nmedians of {args.repeat} rounds (load average {min(loads):.1f}-{max(loads):.1f}):")
    print("| reader | items/s, 0 workers | items/s, 2 workers | CPU us/item, 0 / 2 workers |")
    print("|---|---|---|---|")
    for name in names:
        print(
            f"| {name} | {med(rates[name, 0]):,.0f} | {med(rates[name, 2]):,.0f} | "
            f"{med(cpus[name, 0]):.0f} / {med(cpus[name, 2]):.0f} |"
        )
    print(f"| plain copy of the same bytes | {copy:,.0f} | | |")
    for w in (0, 2):
        ratios = {
            name: [a / b for a, b in zip(rates[name, w], rates["webdataset windows", w], strict=True)]
            for name in names[1:]
        }
        print(
            f"ratio to webdataset, {w} workers (median; per round): "
            + "; ".join(
                f"{name} {med(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})" for name, v in ratios.items()
            )
        )


if __name__ == "__main__":
    main()
