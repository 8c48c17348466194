"""Export fixed-length latent windows of a store as WebDataset tar shards.

Each sample is ``<key>/<start frame>.latent.npy`` + ``.json``, in the layout that
stable-audio-tools' pre-encoded datasets read (``PreEncodedDataset`` / the WebDataset loader with
``pre_encoded=True``): the latent is ``[C*D, T]`` (features first, ``latents[:, start:end]``
crops time) and the JSON carries ``padding_mask`` (1 per real frame, 0 per padding frame),
``seconds_start`` and ``seconds_total``. The ``.npy`` is written with ``allow_pickle=False``.

Shards are deterministic: the windows are numbered up front from the track table (done tracks
in row order, or the ``keys`` order; windows in start order) and shard ``i`` holds windows
``[i * maxcount, (i + 1) * maxcount)``. A work unit writes whole shards (each under
``<name>.partial``, renamed when complete) reading only its own tracks, so units can run in
joblib worker processes or on a Dask cluster (:func:`lincae_core.ops.parallel.run_units`) and the shards are
byte-identical whatever runs them. Tar members are those of ``webdataset.TarWriter`` with fixed
attributes (mtime 0, mode 0444, uid/gid 0, user/group ``bigdata``, PAX format).

This module plans and runs the export; :mod:`~lincae_core.ops.export.writer` writes one unit's
shards, :mod:`~lincae_core.ops.export.windows` numbers the windows and
:mod:`~lincae_core.ops.export.metadata` reads the per-track metadata.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, LincaeError, StoreMismatchError
from lincae_core.location import Location, absolute, as_location, is_remote
from lincae_core.ops.export.metadata import RESERVED_FIELDS, read_track_metadata
from lincae_core.ops.export.sat import FORMATS, file_list, write_sat_extras
from lincae_core.ops.export.windows import window_counts
from lincae_core.ops.export.writer import ShardUnit, Spec, Tracks, write_shards
from lincae_core.ops.outputs import unfinished
from lincae_core.ops.parallel import run_units
from lincae_core.ops.stats import done_tracks_sha256
from lincae_core.publish import check_free
from lincae_core.store import LatentStore, open_store
from lincae_core.store.layout import STATUS_DONE

__all__ = ["ExportResult", "export_shards", "normalization"]


@dataclass(frozen=True)
class ExportResult:
    """What ``export_shards`` wrote. ``to_dict()`` is its JSON record (``--json``).

    Attributes:
        shards: The shard files, in order (``sat-dir``: the output directory alone).
        samples: Windows written.
        tracks: Tracks exported.
        window_frames, hop_frames: The window and hop in latent frames.
        normalized: Whether the windows are standardized (``normalize``).
        metadata: With per-track metadata: exported ``tracks`` with an entry, ``tracks_without``
            one, and ``unused`` entries (naming no exported track); else None.
        padding: The fraction of the exported window frames that are padding (0 without it).
        left_out: The store's tracks still planned or failed, which no window holds
            (``{path: {"planned": n, "failed": m}}``; empty when none).
    """

    shards: list[str]
    samples: int
    tracks: int
    window_frames: int
    hop_frames: int
    normalized: bool
    metadata: dict[str, int] | None = None
    padding: float = 0.0
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``metadata`` only when metadata was given)."""
        record: dict[str, Any] = {
            "shards": self.shards,
            "samples": self.samples,
            "tracks": self.tracks,
            "window_frames": self.window_frames,
            "hop_frames": self.hop_frames,
            "normalized": self.normalized,
            "padding": round(self.padding, 4),
            "left_out": self.left_out,
        }
        if self.metadata is not None:
            record["metadata"] = self.metadata
        return record


def padding_fraction(frames: np.ndarray, counts: np.ndarray, window: int, hop: int) -> float:
    """The fraction of ``sum(counts) * window`` exported frames that are padding: window ``j`` of a
    track of ``f`` frames holds ``min(window, f - j*hop)`` real frames."""
    total = int(counts.sum()) * window
    if total == 0:
        return 0.0
    real = sum(
        int(np.minimum(window, f - hop * np.arange(c)).sum())
        for f, c in zip(frames.tolist(), counts.tolist(), strict=True)
        if c
    )
    return 1.0 - real / total


def normalization(store: LatentStore) -> dict[str, Any]:
    """The ``normalization`` record of ``export --normalize``: ``(z - mean) / std`` per channel
    and dimension, from the store's ``stats`` attribute (``lincae stats``).

    Raises:
        LincaeError: The store has no statistics yet, or they were measured on other tracks than
            the store's done tracks now (e.g. while its encode was running).
    """
    st = store.stats
    if st is None:
        raise LincaeError(
            f"{store.path} has no latent statistics; run 'lincae stats {store.path}' "
            "first (or export without --normalize)"
        )
    table = store.table()
    if st.get("tracks_sha256") != done_tracks_sha256(table):
        now = int((table["status"] == STATUS_DONE).sum())
        raise LincaeError(
            f"{store.path}: its latent statistics were measured on {st.get('count_tracks')} done "
            f"tracks, and {now} tracks are done now (stats taken before the encode finished, or the "
            f"store changed since): run 'lincae stats {store.path}' again before export --normalize"
        )
    return {
        "method": "standardize",
        "formula": "(z - mean) / std",
        "stats_version": st["version"],
        "count_frames": st["count_frames"],
        "mean": st["mean"],
        "std": st["std"],
    }


def _rows(store: LatentStore, keys: Sequence[str] | None) -> np.ndarray:
    status = store.table()["status"]
    if keys is None:
        return np.flatnonzero(status == STATUS_DONE)
    rows = []
    for k in dict.fromkeys(keys):
        try:
            i = store.index_of(k)
        except KeyError:
            i = -1
        if i < 0 or status[i] != STATUS_DONE:
            raise StoreMismatchError(f"{store.path}: no done track with key {k!r}")
        rows.append(i)
    return np.asarray(rows, dtype=np.int64)


def _check_pattern(pattern: str, overwrite: bool) -> Location:
    try:
        a, b = pattern % 0, pattern % 1
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"pattern: expected one %-field for the shard number, e.g. 'shards/%06d.tar'; got {pattern!r}"
        ) from exc
    if a == b:
        raise ConfigError(f"pattern: expected a %-field for the shard number, got {pattern!r}")
    check_free(a, overwrite, "the shards")
    first = as_location(a)
    first.parent.mkdir(parents=True, exist_ok=True)
    return first


def _shards_per_unit(n_shards: int, maxcount: int, n_jobs: int) -> int:
    # Units of at least ~4096 windows (fewer tasks to ship), yet >= 4 units per worker if possible.
    return max(1, min(math.ceil(4096 / maxcount), n_shards // (4 * n_jobs)))


def export_shards(
    store: LatentStore | str | os.PathLike,
    pattern: str,
    window_s: float,
    hop_s: float | None = None,
    maxcount: int = 10000,
    keys: Sequence[str] | None = None,
    *,
    dtype: str | None = None,
    overwrite: bool = False,
    normalize: bool = False,
    metadata: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    format: str = "wds",
    pad: bool = True,
) -> ExportResult:
    """Write windows of every done track (or of ``keys``) as WebDataset shards.

    The shards are byte-identical whatever ``jobs`` or ``scheduler``: shard ``i`` holds the
    global windows ``[i * maxcount, (i + 1) * maxcount)`` (tracks in row order, or the ``keys``
    order; windows in start order). On an error no ``.partial`` file stays; shards completed
    before it do.

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
        metadata: Per-track fields merged into the windows' JSON: a JSON Lines file
            (:func:`read_track_metadata`) or a mapping ``key -> {field: value}``.
        jobs: Local joblib worker processes (-1: every core).
        scheduler: A Dask scheduler address or scheduler file (:mod:`lincae_core.ops.parallel`).
        progress: Called with the number of tracks finished, as they finish.
        format: ``"wds"`` (default, unchanged): members ``<key>/<start>.latent.npy`` + ``.json``.
            ``"sat-wds"``: members ``.npy`` + ``.json`` (stable-audio-tools' pre-encoded
            WebDataset loader reads ``sample["npy"]``). ``"sat-dir"``: ``pattern`` is a directory
            of ``<key>/<start>.npy`` + ``.json`` files with ``filelist.txt`` (its
            ``PreEncodedDataset``). Both ``sat-*`` formats add ``details.json`` (model config,
            card, downsampling ratio) and ``silence.npy`` (``Enc(0)``, ``[C*D, W]``) beside the
            output (:mod:`~lincae_core.ops.export.sat`).
        pad: False: a track's last window holds only its real frames (``[C*D, n]``, a
            ``padding_mask`` of ``n`` ones) instead of being zero-padded to the window.

    Returns:
        The shard files written, samples, window and hop frames; with ``metadata``, the
        number of exported tracks with and without an entry and of unused entries.
    """
    s = open_store(store)
    geo = s.geometry
    fr = geo.frame_rate
    hop_s = window_s if hop_s is None else hop_s
    # Seconds to whole frames, rounding half up (Python's round() would round half to even).
    window = math.floor(window_s * fr + 0.5) if math.isfinite(window_s) else 0
    hop = math.floor(hop_s * fr + 0.5) if window and math.isfinite(hop_s) else 0
    if window < 1 or hop < 1 or maxcount < 1:
        raise ConfigError(
            f"window/hop/maxcount: expected at least one latent frame "
            f"({1 / fr:.4f} s) and maxcount >= 1, got {window_s}, {hop_s}, {maxcount}"
        )
    norm = normalization(s) if normalize else None
    meta = read_track_metadata(metadata) if isinstance(metadata, (str, os.PathLike)) else metadata
    if meta is not None:
        for k, v in meta.items():
            bad = sorted(RESERVED_FIELDS.intersection(v))
            if bad:
                raise ConfigError(
                    f"metadata of {k!r}: field {bad[0]!r} is reserved (the export writes "
                    "it from the store); rename it"
                )
    if format not in FORMATS:
        raise ConfigError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    rows = _rows(s, keys)
    if format == "sat-dir":
        check_free(pattern, overwrite, "the export directory")
        as_location(pattern).mkdir(parents=True, exist_ok=True)
    else:
        _check_pattern(pattern, overwrite)
    table = s.table()
    all_keys = s.keys()
    frames = table["frames"][rows]
    counts = window_counts(frames, window, hop)
    first = np.cumsum(counts) - counts
    total = int(counts.sum())
    common = {
        "model_id": s.model_id,
        "store_id": s.store_id,
        "sample_rate": geo.sample_rate,
        "samples_per_frame": geo.samples_per_frame,
        "downsampling_ratio": geo.samples_per_frame,
        "latent_dim": geo.latent_dim,
        "channels": s.channels,
        "layout": "[C*D, T]",
        **({"normalization": norm} if norm is not None else {}),
    }
    spec = Spec(
        store=absolute(s.path),  # the units' paths: workers may run in another directory
        pattern=absolute(pattern),
        maxcount=maxcount,
        window=window,
        hop=hop,
        dtype=np.dtype(dtype or s.dtype).name,
        frame_rate=fr,
        sample_rate=geo.sample_rate,
        common_json=json.dumps(common)[1:-1],
        mean=None if norm is None else np.asarray(norm["mean"], np.float64),
        std=None if norm is None else np.asarray(norm["std"], np.float64),
        format=format,
        pad=pad,
    )
    keys_out = [all_keys[r] for r in rows.tolist()]
    extra = [""] * len(keys_out)
    with_meta = 0
    if meta is not None:
        for i, k in enumerate(keys_out):
            fields = meta.get(k)
            if fields is not None:
                with_meta += 1
                if fields:
                    extra[i] = ", " + json.dumps(dict(fields))[1:-1]
    n_shards = math.ceil(total / maxcount)
    ends = first + counts

    def unit(s0: int, s1: int) -> ShardUnit:
        w0, w1 = s0 * maxcount, min(s1 * maxcount, total)
        i0 = int(np.searchsorted(ends, w0, side="right"))
        i1 = int(np.searchsorted(first, w1, side="left"))
        r = rows[i0:i1]
        tracks = Tracks(
            keys=keys_out[i0:i1],
            offset=table["offset"][r],
            frames=frames[i0:i1],
            samples=table["samples"][r],
            extra=extra[i0:i1],
            first_window=first[i0:i1],
            counts=counts[i0:i1],
        )
        return ShardUnit(spec, tracks, w0, w1)

    def units(n_jobs: int) -> list[ShardUnit]:
        per = _shards_per_unit(n_shards, maxcount, n_jobs)
        return [unit(a, min(a + per, n_shards)) for a in range(0, n_shards, per)]

    shard_names = [pattern] if format == "sat-dir" else [pattern % i for i in range(n_shards)]
    try:
        run_units(write_shards, units, jobs, scheduler, progress, in_process={"readers_cache": {}})
    except BaseException:
        for name in shard_names:  # units killed by the abort leave their partial shard
            with contextlib.suppress(OSError):
                if not is_remote(name):  # a shard at a URL is uploaded whole or not at all
                    Path(f"{name}.partial").unlink(missing_ok=True)
        raise
    if format != "wds":
        root = as_location(pattern) if format == "sat-dir" else as_location(pattern % 0).parent
        write_sat_extras(
            root,
            s,
            common,
            window=window,
            hop=hop,
            pad=pad,
            format=format,
            dtype=spec.dtype,
            files=file_list(keys_out, counts, hop) if format == "sat-dir" else None,
        )
    coverage = None
    if meta is not None:
        coverage = {
            "tracks": with_meta,
            "tracks_without": len(keys_out) - with_meta,
            "unused": len(set(meta).difference(keys_out)),
        }
    return ExportResult(
        padding=padding_fraction(frames, counts, window, hop) if pad else 0.0,
        left_out=unfinished([s]) if keys is None else {},
        shards=shard_names,
        samples=total,
        tracks=len(keys_out),
        window_frames=window,
        hop_frames=hop,
        normalized=normalize,
        metadata=coverage,
    )
