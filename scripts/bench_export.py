"""Benchmark ``lincae export``: today's per-window loop against the bulk export, one job and two.

Builds (or reuses, ``--store PATH``) a store of N tracks x F frames in the default model's
geometry (16 kHz, 2048 samples per frame, 64-dim mono float16, 4096-frame chunks) with random
latents written through the public store API, then in one run:

- ``old``: a faithful copy of the export loop before issue 13 (``OLD BASELINE`` below: one
  ``store.read_track`` + ``np.save`` + ``json.dumps`` + ``webdataset.ShardWriter`` write per
  window);
- ``new --jobs 1`` and ``new --jobs 2``: :func:`lincae_core.export_shards`.

It prints seconds, MB/s (of shard bytes written, and of latent bytes exported) and the ratios
old/new, checks that the two new runs wrote byte-identical shards, that webdataset reads every
new sample back in order, and that the first new shard holds the same latents and JSON as the
old one (but ``downsampling_ratio``, which the old export did not write).

    python scripts/bench_export.py --tracks 100000 --frames 40 --window 2
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import webdataset as wds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lincae_core import LatentStore, export_shards  # noqa: E402
from lincae_core.ops.export import sample_key, window_counts, window_starts  # noqa: E402
from lincae_core.publish import publish_file  # noqa: E402
from lincae_core.store.layout import STATUS_DONE  # noqa: E402
from lincae_core.store.synthetic import synthetic_store  # noqa: E402

GEOMETRY = {"sample_rate": 16000, "samples_per_frame": 2048, "latent_dim": 64}  # the default model


def build_store(path: Path, tracks: int, frames: int, seed: int = 0) -> None:
    """N tracks x F frames of random float16 latents, written in bulk (table order = offsets)."""
    synthetic_store(path, [(f"t{i:07d}", frames) for i in range(tracks)], seed=seed, chunk_frames=4096)


# ===================================== OLD BASELINE =====================================
# A faithful copy of lincae_core/ops/export.py before issue 13 (commit a918bdb): one
# store.read_track (a whole decoded Zarr chunk) and one np.save/json.dumps/tar write per window.
def _old_window_sample(
    store: LatentStore, row: int, start: int, window: int, dtype: np.dtype, norm: dict[str, Any] | None = None
) -> dict[str, Any]:
    t = store.track(row)
    geo = store.geometry
    stop = min(start + window, t.frames)
    z = np.zeros((window, store.channels, geo.latent_dim), dtype=dtype)  # [T, C, D]
    real = store.read_track(row, start, stop)
    if norm is not None:  # padding frames stay 0 (padding_mask says which)
        mean, std = (np.asarray(norm[k], np.float64) for k in ("mean", "std"))
        real = (real.astype(np.float64) - mean) / np.where(std > 0, std, 1.0)
    z[: stop - start] = real
    latent = np.ascontiguousarray(z.reshape(window, -1).T)  # [C*D, T]
    buf = io.BytesIO()
    np.save(buf, latent, allow_pickle=False)
    meta = {
        "key": t.key,
        "start_frame": start,
        "frames": stop - start,
        "window_frames": window,
        "seconds_start": start / geo.frame_rate,
        "seconds_total": t.samples / geo.sample_rate,
        "padding_mask": [1] * (stop - start) + [0] * (window - (stop - start)),
        "model_id": store.model_id,
        "store_id": store.store_id,
        "sample_rate": geo.sample_rate,
        "samples_per_frame": geo.samples_per_frame,
        "latent_dim": geo.latent_dim,
        "channels": store.channels,
        "layout": "[C*D, T]",
        **({"normalization": norm} if norm is not None else {}),
    }
    return {
        "__key__": sample_key(t.key, start),
        "latent.npy": buf.getvalue(),
        "json": json.dumps(meta).encode("utf-8"),
    }


class _OldPartialShards:
    def __init__(self, pattern: str, maxcount: int) -> None:
        self.shards: list[str] = []
        self._open: dict[str, BinaryIO] = {}
        self._writer = wds.ShardWriter(
            pattern,
            maxcount=maxcount,
            verbose=0,
            opener=self._opener,
            post=self._post,
            encoder=False,
            mtime=0.0,
            format="PAX_FORMAT",
        )

    def _opener(self, fname: str) -> BinaryIO:
        self._open[fname] = open(f"{fname}.partial", "wb")  # noqa: SIM115 - closed in _post
        return self._open[fname]

    def _post(self, fname: str) -> None:
        self._open.pop(fname).close()
        publish_file(f"{fname}.partial", fname)
        self.shards.append(fname)

    def write(self, sample: dict[str, Any]) -> None:
        self._writer.write(sample)

    def __enter__(self) -> _OldPartialShards:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._writer.post = None
        self._writer.close()
        for fname, fh in self._open.items():
            fh.close()
            Path(f"{fname}.partial").unlink(missing_ok=True)


def old_export(store_path: Path, pattern: str, window_s: float, maxcount: int) -> dict[str, Any]:
    os.environ["LINCAE_ZARR_IO"] = "1"  # the old loop read through zarr (before the direct chunk path)
    try:
        s = LatentStore.open(store_path)
    finally:
        os.environ.pop("LINCAE_ZARR_IO")
    fr = s.geometry.frame_rate
    window = hop = math.floor(window_s * fr + 0.5)
    out_dtype = np.dtype(s.dtype)
    Path(pattern % 0).parent.mkdir(parents=True, exist_ok=True)  # as its _check_pattern did
    n = 0
    with _OldPartialShards(pattern, maxcount) as writer:
        for row in np.flatnonzero(s.table()["status"] == STATUS_DONE).tolist():
            for start in window_starts(s.track(row).frames, window, hop):
                writer.write(_old_window_sample(s, row, start, window, out_dtype))
                n += 1
    return {"shards": writer.shards, "samples": n}


# =================================== END OLD BASELINE ===================================


def timed(label: str, fn: Callable[[], dict[str, Any]], latent_bytes: int) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    size = sum(Path(p).stat().st_size for p in out["shards"])
    print(
        f"{label:16s} {dt:8.2f} s  {size / 1e6 / dt:8.1f} MB/s of shards ({size / 1e6:.0f} MB)  "
        f"{latent_bytes / 1e6 / dt:8.1f} MB/s of latents  {out['samples']} windows",
        flush=True,
    )
    return dt, out


def digest(paths: list[str]) -> list[str]:
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--window", type=float, default=2.0, help="--window (and --hop) in seconds")
    ap.add_argument("--maxcount", type=int, default=10000)
    ap.add_argument(
        "--store",
        type=Path,
        default=None,
        help="reuse this store (built there with --tracks/--frames if missing)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="where shards go (default: a temp dir)")
    ap.add_argument("--no-old", action="store_true", help="skip the old per-window baseline")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lincae-bench-export-", dir=args.workdir))
    try:
        store = args.store or work / "store.zarr"
        if not store.exists():
            t0 = time.perf_counter()
            build_store(store, args.tracks, args.frames)
            print(f"built {store} in {time.perf_counter() - t0:.1f} s", flush=True)
        s = LatentStore.open(store)
        fr = s.geometry.frame_rate
        window = math.floor(args.window * fr + 0.5)
        frames = s.table()["frames"][s.table()["status"] == STATUS_DONE]
        n_windows = int(window_counts(frames, window, window).sum())
        latent_bytes = n_windows * window * s.channels * s.geometry.latent_dim * np.dtype(s.dtype).itemsize
        print(
            f"store: {s.n_tracks} tracks, {s.total_frames} frames, {s.dtype}, chunks of "
            f"{s.chunk_frames}; --window {args.window} = {window} frames -> {n_windows} windows",
            flush=True,
        )
        res: dict[str, float] = {}
        old = None
        if not args.no_old:
            res["old"], old = timed(
                "old (per window)",
                lambda: old_export(store, str(work / "old" / "%06d.tar"), args.window, args.maxcount),
                latent_bytes,
            )
        outs = {}
        for jobs in (1, 2):
            res[f"new-j{jobs}"], outs[jobs] = timed(
                f"new --jobs {jobs}",
                lambda j=jobs: export_shards(
                    store, str(work / f"new{j}" / "%06d.tar"), args.window, maxcount=args.maxcount, jobs=j
                ),
                latent_bytes,
            )
        if old is not None:
            print(
                f"speed-up old/new: --jobs 1 {res['old'] / res['new-j1']:.1f}x, "
                f"--jobs 2 {res['old'] / res['new-j2']:.1f}x"
            )
        print(f"--jobs 2 vs --jobs 1: {res['new-j1'] / res['new-j2']:.2f}x")
        same = digest(outs[1]["shards"]) == digest(outs[2]["shards"])
        print(f"--jobs 1 and --jobs 2 shards byte-identical: {same}")
        keys = [
            x["__key__"] for x in wds.WebDataset(outs[1]["shards"], shardshuffle=False, empty_check=False)
        ]
        t = s.table()
        want = [
            sample_key(k, st)
            for k, f, d in zip(s.keys(), t["frames"], t["status"], strict=True)
            if d == STATUS_DONE
            for st in window_starts(int(f), window, window)
        ]
        print(f"webdataset read back {len(keys)} samples, in the expected order: {keys == want}")
        ok = None
        if old is not None:

            def decoded(shard: str) -> list[tuple[str, bytes, dict]]:
                return [
                    (
                        x["__key__"],
                        np.load(io.BytesIO(x["latent.npy"])).tobytes(),
                        {k: v for k, v in json.loads(x["json"]).items() if k != "downsampling_ratio"},
                    )
                    for x in wds.WebDataset([shard], shardshuffle=False, empty_check=False)
                ]

            ok = decoded(old["shards"][0]) == decoded(outs[1]["shards"][0])
            print(f"first shard: same latents and JSON as the old export: {ok}")
        if not (same and keys == want and ok is not False):
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
