"""Writing the shards of one export work unit: windows of its tracks as tar members.

A :class:`ShardUnit` is a run of whole shards; :func:`write_shards` reads only its own tracks
(through a small chunk cache), builds each piece of windows at once (``[k, C*D, T]``, bounded by
:data:`BLOCK_BYTES`) and writes each window's JSON (prebuilt text, equal to ``json.dumps``) and
``.npy`` as tar members of the shard that holds it (:mod:`lincae_core.ops.export.tar`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lincae_core.location import as_location, is_remote
from lincae_core.ops.export.tar import TAR_BLOCK, ShardFile, npy_header, tar_header
from lincae_core.ops.export.windows import key_prefix
from lincae_core.store import LatentArray
from lincae_core.store.array import CachedArray, chunk_cache_bytes

__all__ = ["BLOCK_BYTES", "ShardUnit", "Spec", "Tracks", "write_shards"]

BLOCK_BYTES = 16 * 2**20  # windows built at once per track piece (bounds a unit's memory)


@dataclass(frozen=True)
class Spec:
    """What every unit of one export shares (small: shipped with each unit)."""

    store: str
    pattern: str
    maxcount: int
    window: int
    hop: int
    dtype: str
    frame_rate: float
    sample_rate: int
    common_json: str  # the fields every window shares, as '"a": 1, "b": 2'
    mean: np.ndarray | None
    std: np.ndarray | None
    format: str = "wds"  # "wds" (.latent.npy members), "sat-wds" (.npy members), "sat-dir" (files)
    pad: bool = True  # False: a track's last window holds only its real frames


@dataclass(frozen=True)
class Tracks:
    """The tracks a unit reads, in export order, and where their windows start globally."""

    keys: list[str]
    offset: np.ndarray
    frames: np.ndarray
    samples: np.ndarray
    extra: list[str]  # per track: ', "caption": "…"' or ''
    first_window: np.ndarray  # global index of each track's first window
    counts: np.ndarray  # windows of each track


def _padding_masks(window: int) -> list[str]:
    return [json.dumps([1] * n + [0] * (window - n)) for n in range(window + 1)]


def _pieces(counts: int, window: int, hop: int, row_bytes: int) -> Iterator[tuple[int, int]]:
    """Split a track's windows ``[0, counts)`` into runs whose stacked windows fit BLOCK_BYTES."""
    per = max(1, BLOCK_BYTES // max(1, window * row_bytes))
    for a in range(0, counts, per):
        yield a, min(a + per, counts)


@dataclass(frozen=True)
class ShardUnit:
    """One work unit: the whole shards holding global windows ``[w0, w1)``."""

    spec: Spec
    tracks: Tracks
    w0: int
    w1: int


def _write_files(root: str, name: str, members: list[tuple[str, bytes, bytes | memoryview]]) -> None:
    """``sat-dir``: a window as files ``root/<name>.json`` and ``root/<name>.npy``, each written
    under a temporary name and renamed (a window's files are whole or absent)."""
    if is_remote(root):
        url = as_location(root) / name
        for ext, head, body in members:  # one PUT a file: whole or absent
            url.with_name(f"{url.name}.{ext}").write_bytes(bytes(head) + bytes(body))
        return
    base = Path(root) / name
    base.parent.mkdir(parents=True, exist_ok=True)
    for ext, head, body in members:
        tmp = base.with_name(f"{base.name}.{ext}.partial")
        with open(tmp, "wb") as fh:
            fh.write(head)
            fh.write(body)
        os.replace(tmp, base.with_name(f"{base.name}.{ext}"))


def write_shards(unit: ShardUnit, readers_cache: dict[Any, CachedArray] | None = None) -> int:
    """Write the shards of ``unit`` (``sat-dir``: its windows' files); return the number of
    tracks whose last window is among them. ``readers_cache``: the store's reader kept across the
    units that run in this process (opened once; the object at a unit boundary read once)."""
    spec, tracks, w0, w1 = unit.spec, unit.tracks, unit.w0, unit.w1
    npy_ext = "latent.npy" if spec.format == "wds" else "npy"
    to_dir = spec.format == "sat-dir"
    ordered = bool(np.all(np.diff(tracks.offset) >= 0))
    cache = {} if readers_cache is None else readers_cache
    reader = cache.get((spec.store, ordered))
    if reader is None:
        base = LatentArray.open(spec.store, "r")
        # Tracks in offset order read each chunk once: two chunks of cache suffice.
        budget = 2 * base.chunk_frames * int(np.prod(base.shape[1:])) * base.dtype.itemsize
        reader = cache[(spec.store, ordered)] = CachedArray(base, budget if ordered else chunk_cache_bytes())
    _, c, d = reader.shape
    feat, window, hop, mc = c * d, spec.window, spec.hop, spec.maxcount
    out_dtype = np.dtype(spec.dtype)
    npy_head = npy_header(out_dtype, (feat, window))
    npy_size = len(npy_head) + feat * window * out_dtype.itemsize
    npy_pad = bytes(-npy_size % TAR_BLOCK)
    masks = _padding_masks(window)
    win_bytes = feat * window * out_dtype.itemsize
    mean, std = spec.mean, None if spec.std is None else np.where(spec.std > 0, spec.std, 1.0)
    ar = np.arange(window)
    shard: ShardFile | None = None
    done = 0
    try:
        for i, key in enumerate(tracks.keys):
            f, g0, n_w = int(tracks.frames[i]), int(tracks.first_window[i]), int(tracks.counts[i])
            ja, jb = max(0, w0 - g0), min(n_w, w1 - g0)
            if ja >= jb:
                continue
            prefix = key_prefix(key)
            head = f'{{"key": {json.dumps(key)}, "start_frame": '
            tail = (
                f'"seconds_total": {json.dumps(int(tracks.samples[i]) / spec.sample_rate)}, "padding_mask": '
            )
            end = f", {spec.common_json}{tracks.extra[i]}}}"
            off = int(tracks.offset[i])
            for a, b in _pieces(jb - ja, window, hop, feat * out_dtype.itemsize):
                a, b = a + ja, b + ja
                s_a, s_b = a * hop, (b - 1) * hop
                stop = min(s_b + window, f)
                real = np.asarray(reader.read(off + s_a, off + stop))
                if mean is not None and std is not None:  # padding frames stay 0 (padding_mask)
                    real = (real.astype(np.float64) - mean) / std
                span = np.zeros((s_b - s_a + window, c, d), dtype=out_dtype)
                span[: stop - s_a] = real
                idx = (np.arange(b - a) * hop)[:, None] + ar[None, :]
                wins = span.reshape(-1, feat)[idx]  # [k, T, C*D]
                data = np.ascontiguousarray(wins.transpose(0, 2, 1)).data.cast("B")
                parts: list[bytes | memoryview] = []
                for j in range(a, b):
                    g = g0 + j
                    start = j * hop
                    n = min(window, f - start)
                    meta = (
                        f'{head}{start}, "frames": {n}, "window_frames": {window}, '
                        f'"seconds_start": {float.__repr__(start / spec.frame_rate)}, '
                        f"{tail}{masks[n] if spec.pad else masks[n][: 3 * n - 1] + ']'}{end}"
                    ).encode()
                    name = f"{prefix}/{start:08d}"
                    k = j - a
                    if spec.pad or n == window:
                        npy_h, npy_b = npy_head, data[k * win_bytes : (k + 1) * win_bytes]
                    else:  # unpadded: the window's n real frames, [C*D, n]
                        npy_h = npy_header(out_dtype, (feat, n))
                        npy_b = np.ascontiguousarray(wins[k, :n].T).data.cast("B")
                    if to_dir:
                        _write_files(spec.pattern, name, [("json", b"", meta), ("npy", npy_h, npy_b)])
                        continue
                    if g % mc == 0 or shard is None:
                        if shard is not None:
                            shard.write(parts)
                            parts = []
                            shard.finish()
                        shard = ShardFile(spec.pattern % (g // mc))
                    size = len(npy_h) + len(npy_b)
                    parts += (
                        tar_header(f"{name}.json", len(meta)),
                        meta,
                        bytes(-len(meta) % TAR_BLOCK),
                        tar_header(f"{name}.{npy_ext}", size),
                        npy_h,
                        npy_b,
                        npy_pad if size == npy_size else bytes(-size % TAR_BLOCK),
                    )
                if to_dir:
                    continue
                assert shard is not None
                shard.write(parts)
            if jb == n_w:
                done += 1
        if shard is not None:
            shard.finish()
            shard = None
    finally:
        if shard is not None:
            shard.abort()
    return done
