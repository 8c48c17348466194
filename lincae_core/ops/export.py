"""Export fixed-length latent windows of a store as WebDataset tar shards.

Each sample is ``<key>/<start frame>.latent.npy`` + ``.json``, in the layout that
stable-audio-tools' pre-encoded datasets read (``PreEncodedDataset`` / the WebDataset loader with
``pre_encoded=True``): the latent is ``[C*D, T]`` (features first, ``latents[:, start:end]``
crops time) and the JSON carries ``padding_mask`` (1 per real frame, 0 per padding frame),
``seconds_start`` and ``seconds_total``. The ``.npy`` is written with ``allow_pickle=False``.

Shards are written under ``<name>.partial`` and renamed when complete.
"""

from __future__ import annotations

import io
import json
import math
import os
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import webdataset as wds

from lincae_core.errors import ConfigError, LincaeError, StoreMismatchError
from lincae_core.publish import publish_file
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_DONE

__all__ = ["export_shards", "normalization", "sample_key", "window_starts"]


def sample_key(key: str, start_frame: int) -> str:
    """WebDataset ``__key__`` of a window: the track key percent-encoded, then the start frame.

    WebDataset splits a tar member name at the first dot of its last path component, so dots
    (and ``%``, ``~``, characters outside ASCII) are percent-encoded; the mapping is injective.
    """
    s = urllib.parse.quote(key, safe="/").replace(".", "%2E").replace("~", "%7E")
    if s.startswith("/") or s.endswith("/") or "//" in s:
        s = s.replace("/", "%2F")
    return f"{s}/{start_frame:08d}"


def window_starts(frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the windows covering ``frames`` (the last one may need padding)."""
    if frames <= 0:
        return []
    starts = list(range(0, max(frames - window, 0) + 1, hop))
    if starts[-1] + window < frames:
        starts.append(starts[-1] + hop)
    return starts


def normalization(store: LatentStore) -> dict[str, Any]:
    """The ``normalization`` record of ``export --normalize``: ``(z - mean) / std`` per channel
    and dimension, from the store's ``stats`` attribute (``lincae stats``).

    Raises:
        LincaeError: The store has no statistics yet.
    """
    st = store.stats
    if st is None:
        raise LincaeError(f"{store.path} has no latent statistics; run 'lincae stats {store.path}' "
                          "first (or export without --normalize)")
    return {"method": "standardize", "formula": "(z - mean) / std", "stats_version": st["version"],
            "count_frames": st["count_frames"], "mean": st["mean"], "std": st["std"]}


def _window_sample(store: LatentStore, row: int, start: int, window: int,
                   dtype: np.dtype, norm: dict[str, Any] | None = None) -> dict[str, Any]:
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
        "key": t.key, "start_frame": start, "frames": stop - start, "window_frames": window,
        "seconds_start": start / geo.frame_rate, "seconds_total": t.samples / geo.sample_rate,
        "padding_mask": [1] * (stop - start) + [0] * (window - (stop - start)),
        "model_id": store.model_id, "store_id": store.store_id,
        "sample_rate": geo.sample_rate, "samples_per_frame": geo.samples_per_frame,
        "latent_dim": geo.latent_dim, "channels": store.channels, "layout": "[C*D, T]",
        **({"normalization": norm} if norm is not None else {}),
    }
    return {"__key__": sample_key(t.key, start), "latent.npy": buf.getvalue(),
            "json": json.dumps(meta).encode("utf-8")}


def _rows(store: LatentStore, keys: Sequence[str] | None) -> Iterator[int]:
    status = store.table()["status"]
    if keys is None:
        yield from np.flatnonzero(status == STATUS_DONE).tolist()
        return
    for k in dict.fromkeys(keys):
        try:
            i = store.index_of(k)
        except KeyError:
            i = -1
        if i < 0 or status[i] != STATUS_DONE:
            raise StoreMismatchError(f"{store.path}: no done track with key {k!r}")
        yield i


def _check_pattern(pattern: str, overwrite: bool) -> Path:
    try:
        a, b = pattern % 0, pattern % 1
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pattern: expected one %-field for the shard number, e.g. "
                          f"'shards/%06d.tar'; got {pattern!r}") from exc
    if a == b:
        raise ConfigError(f"pattern: expected a %-field for the shard number, got {pattern!r}")
    if Path(a).exists() and not overwrite:
        raise LincaeError(f"{a} already exists (use --overwrite or overwrite=True to replace the shards)")
    Path(a).parent.mkdir(parents=True, exist_ok=True)
    return Path(a)


class _PartialShards:
    """A ``webdataset.ShardWriter`` writing ``<name>.partial`` files renamed when complete.

    On an error the partial shard is removed; complete shards stay.
    """

    def __init__(self, pattern: str, maxcount: int) -> None:
        self.shards: list[str] = []
        self._open: dict[str, BinaryIO] = {}
        self._writer = wds.ShardWriter(pattern, maxcount=maxcount, verbose=0, opener=self._opener,
                                       post=self._post, encoder=False, mtime=0.0,
                                       format="PAX_FORMAT")

    def _opener(self, fname: str) -> BinaryIO:
        self._open[fname] = open(f"{fname}.partial", "wb")  # noqa: SIM115 - closed in _post
        return self._open[fname]

    def _post(self, fname: str) -> None:
        self._open.pop(fname).close()
        publish_file(f"{fname}.partial", fname)
        self.shards.append(fname)

    def write(self, sample: dict[str, Any]) -> None:
        """Write one sample (``__key__`` plus bytes values)."""
        self._writer.write(sample)

    def __enter__(self) -> _PartialShards:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._writer.post = None  # close the tar stream without publishing it
        self._writer.close()
        for fname, fh in self._open.items():
            fh.close()
            Path(f"{fname}.partial").unlink(missing_ok=True)


def export_shards(store: LatentStore | str | os.PathLike, pattern: str, window_s: float,
                  hop_s: float | None = None, maxcount: int = 10000,
                  keys: Sequence[str] | None = None, *, dtype: str | None = None,
                  overwrite: bool = False, normalize: bool = False,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write windows of every done track (or of ``keys``) as WebDataset shards.

    Args:
        store: The latent store (path or open store).
        pattern: Shard file pattern with one %-field, e.g. ``"shards/%06d.tar"``.
        window_s: Window length in seconds (rounded to whole latent frames).
        hop_s: Hop between window starts in seconds (default: ``window_s``, no overlap).
        maxcount: Samples per shard.
        keys: Tracks to export (default: every done track).
        dtype: Dtype of the ``.npy`` latents (default: the store's).
        overwrite: Replace existing shards.
        normalize: Write ``(z - mean) / std`` with the store's ``stats`` (``lincae stats``; a
            zero std divides by 1), recorded in every sample's JSON under ``normalization``.
        progress: Called with 1 after each track.

    Returns:
        Summary: shard files written, samples, windows' frames.
    """
    s = store if isinstance(store, LatentStore) else LatentStore.open(store)
    fr = s.geometry.frame_rate
    hop_s = window_s if hop_s is None else hop_s
    # Seconds to whole frames, rounding half up (Python's round() would round half to even).
    window = math.floor(window_s * fr + 0.5) if math.isfinite(window_s) else 0
    hop = math.floor(hop_s * fr + 0.5) if window and math.isfinite(hop_s) else 0
    if window < 1 or hop < 1 or maxcount < 1:
        raise ConfigError(f"window/hop/maxcount: expected at least one latent frame "
                          f"({1 / fr:.4f} s) and maxcount >= 1, got {window_s}, {hop_s}, {maxcount}")
    norm = normalization(s) if normalize else None
    _check_pattern(pattern, overwrite)
    out_dtype = np.dtype(dtype or s.dtype)
    n = 0
    with _PartialShards(pattern, maxcount) as writer:
        for row in _rows(s, keys):
            for start in window_starts(s.track(row).frames, window, hop):
                writer.write(_window_sample(s, row, start, window, out_dtype, norm))
                n += 1
            if progress is not None:
                progress(1)
    shards = writer.shards
    return {"shards": shards, "samples": n, "window_frames": window, "hop_frames": hop,
            "normalized": normalize}
