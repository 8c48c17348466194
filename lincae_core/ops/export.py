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
joblib worker processes or on a Dask cluster (:mod:`lincae_core.ops.cluster`) and the shards are
byte-identical whatever runs them. Tar members are those of ``webdataset.TarWriter`` with fixed
attributes (mtime 0, mode 0444, uid/gid 0, user/group ``bigdata``, PAX format).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tarfile
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import joblib
import numpy as np

from lincae_core.errors import ConfigError, LincaeError, StoreMismatchError
from lincae_core.ops.cluster import parallel_backend
from lincae_core.publish import check_free, publish_file
from lincae_core.store import LatentArray, LatentStore
from lincae_core.store.array import CachedArray, chunk_cache_bytes
from lincae_core.store.layout import STATUS_DONE

__all__ = [
    "RESERVED_FIELDS",
    "export_shards",
    "normalization",
    "read_track_metadata",
    "sample_key",
    "window_counts",
    "window_starts",
]

#: Fields of every sample's JSON, written by the export; ``--metadata`` may not set them.
RESERVED_FIELDS = frozenset(
    {
        "key",
        "start_frame",
        "frames",
        "window_frames",
        "seconds_start",
        "seconds_total",
        "padding_mask",
        "model_id",
        "store_id",
        "sample_rate",
        "samples_per_frame",
        "downsampling_ratio",
        "latent_dim",
        "channels",
        "layout",
        "normalization",
    }
)
METADATA_KEY_FIELD = "key"
_BLOCK_BYTES = 16 * 2**20  # windows built at once per track piece (bounds a unit's memory)
_TAR_BLOCK, _TAR_RECORD = 512, 20 * 512


def sample_key(key: str, start_frame: int) -> str:
    """WebDataset ``__key__`` of a window: the track key percent-encoded, then the start frame.

    WebDataset splits a tar member name at the first dot of its last path component, so dots
    (and ``%``, ``~``, characters outside ASCII) are percent-encoded; the mapping is injective.
    """
    return f"{_key_prefix(key)}/{start_frame:08d}"


def _key_prefix(key: str) -> str:
    s = urllib.parse.quote(key, safe="/").replace(".", "%2E").replace("~", "%7E")
    if s.startswith("/") or s.endswith("/") or "//" in s:
        s = s.replace("/", "%2F")
    return s


def window_starts(frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the windows covering ``frames`` (the last one may need padding)."""
    if frames <= 0:
        return []
    starts = list(range(0, max(frames - window, 0) + 1, hop))
    if starts[-1] + window < frames:
        starts.append(starts[-1] + hop)
    return starts


def window_counts(frames: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``len(window_starts(f, window, hop))`` for every ``f`` of ``frames`` (vectorized).

    The starts of a track are ``0, hop, 2 hop, …`` (``count`` of them).
    """
    f = np.asarray(frames, dtype=np.int64)
    full = np.maximum(f - window, 0) // hop  # index of the last start that fits
    n = full + 1 + (full * hop + window < f)
    return np.where(f > 0, n, 0)


def normalization(store: LatentStore) -> dict[str, Any]:
    """The ``normalization`` record of ``export --normalize``: ``(z - mean) / std`` per channel
    and dimension, from the store's ``stats`` attribute (``lincae stats``).

    Raises:
        LincaeError: The store has no statistics yet.
    """
    st = store.stats
    if st is None:
        raise LincaeError(
            f"{store.path} has no latent statistics; run 'lincae stats {store.path}' "
            "first (or export without --normalize)"
        )
    return {
        "method": "standardize",
        "formula": "(z - mean) / std",
        "stats_version": st["version"],
        "count_frames": st["count_frames"],
        "mean": st["mean"],
        "std": st["std"],
    }


def read_track_metadata(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read per-track metadata from a JSON Lines file: one object per line with a ``"key"``
    field (the track key); its other fields go into that track's windows' JSON.

    Blank lines are skipped.

    Raises:
        ConfigError: One line naming the file and line: unreadable file, bad JSON, not an
            object, no string ``key``, a duplicate key or a reserved field.
    """
    p = Path(path)
    out: dict[str, dict[str, Any]] = {}
    where: dict[str, int] = {}
    try:
        fh = p.open("r", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{p}: cannot read the metadata file ({exc.strerror or exc}); expected a JSON Lines file"
        ) from exc
    with fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 - lineno names a decode error's line
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"{p}:{lineno}: not valid JSON ({exc.msg}, column {exc.colno}); "
                        "expected one JSON object per line"
                    ) from None
                if not isinstance(obj, dict):
                    raise ConfigError(
                        f'{p}:{lineno}: expected a JSON object with a "key" field, got {type(obj).__name__}'
                    )
                key = obj.pop(METADATA_KEY_FIELD, None)
                if not isinstance(key, str):
                    raise ConfigError(
                        f'{p}:{lineno}: expected a string "key" field (the track key), '
                        f"got {'none' if key is None else repr(key)}"
                    )
                if key in where:
                    raise ConfigError(
                        f"{p}:{lineno}: duplicate key {key!r} (first on line {where[key]}); "
                        "give each track once"
                    )
                bad = sorted(RESERVED_FIELDS.intersection(obj))
                if bad:
                    raise ConfigError(
                        f"{p}:{lineno}: field {bad[0]!r} is reserved (the export writes it "
                        "from the store); rename it"
                    )
                where[key] = lineno
                out[key] = obj
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{p}:{lineno + 1}: not UTF-8 ({exc.reason}); expected a UTF-8 JSON Lines file"
            ) from None
    return out


# ------------------------------------------------------------------------------ tar members
_TAR_USER, _TAR_MODE = "bigdata", 0o444  # webdataset.TarWriter's defaults


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, 0, _TAR_MODE, _TAR_USER, _TAR_USER
    return ti


def _header_template() -> tuple[bytes, int]:
    t = bytearray(_tarinfo("", 0).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    t[124:136] = bytes(12)  # size
    t[148:156] = b" " * 8  # checksum, counted as spaces
    return bytes(t), sum(t)


_TEMPLATE, _TEMPLATE_SUM = _header_template()


def tar_header(name: str, size: int) -> bytes:
    """The tar header block(s) of a member, equal to ``tarfile.TarInfo.tobuf(PAX_FORMAT)`` with
    the attributes of :func:`_tarinfo` (built directly for short ASCII names: 20x faster)."""
    if len(name) > 100 or not name.isascii() or size >= 8**11:
        return _tarinfo(name, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    nb = name.encode("ascii")
    sb = b"%011o\0" % size
    chk = _TEMPLATE_SUM + sum(nb) + sum(sb) - 0  # the template's name and size fields are NULs
    return b"".join(
        (
            nb,
            bytes(100 - len(nb)),
            _TEMPLATE[100:124],
            sb,
            _TEMPLATE[136:148],
            b"%06o\0 " % chk,
            _TEMPLATE[156:],
        )
    )


def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """The ``.npy`` header ``np.save`` writes for a C-ordered array of ``dtype`` and ``shape``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


# ------------------------------------------------------------------------------ work units
@dataclass(frozen=True)
class _Spec:
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


@dataclass(frozen=True)
class _Tracks:
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


class _ShardFile:
    """One shard written as ``<name>.partial`` and renamed when complete."""

    def __init__(self, name: str) -> None:
        self.name, self.size = name, 0
        self._fh: BinaryIO = open(f"{name}.partial", "wb")  # noqa: SIM115 - closed in finish/abort

    def write(self, parts: list[bytes | memoryview]) -> None:
        data = b"".join(parts)
        self._fh.write(data)
        self.size += len(data)

    def finish(self) -> None:
        end = 2 * _TAR_BLOCK  # two zero blocks, then zeros up to a whole record (as tarfile)
        end += -(self.size + end) % _TAR_RECORD
        self._fh.write(bytes(end))
        self._fh.close()
        publish_file(f"{self.name}.partial", self.name)

    def abort(self) -> None:
        self._fh.close()
        Path(f"{self.name}.partial").unlink(missing_ok=True)


def _pieces(counts: int, window: int, hop: int, row_bytes: int) -> Iterator[tuple[int, int]]:
    """Split a track's windows ``[0, counts)`` into runs whose stacked windows fit _BLOCK_BYTES."""
    per = max(1, _BLOCK_BYTES // max(1, window * row_bytes))
    for a in range(0, counts, per):
        yield a, min(a + per, counts)


def _run_unit(spec: _Spec, tracks: _Tracks, w0: int, w1: int, reader: CachedArray | None = None) -> int:
    """Write the shards holding global windows ``[w0, w1)`` (whole shards); return the number of
    tracks whose last window is among them."""
    if reader is None:
        base = LatentArray.open(spec.store, "r")
        ordered = bool(np.all(np.diff(tracks.offset) >= 0))
        # Tracks in offset order read each chunk once: two chunks of cache suffice.
        budget = 2 * base.chunk_frames * int(np.prod(base.shape[1:])) * base.dtype.itemsize
        reader = CachedArray(base, budget if ordered else chunk_cache_bytes())
    _, c, d = reader.shape
    feat, window, hop, mc = c * d, spec.window, spec.hop, spec.maxcount
    out_dtype = np.dtype(spec.dtype)
    npy_head = _npy_header(out_dtype, (feat, window))
    npy_size = len(npy_head) + feat * window * out_dtype.itemsize
    npy_pad = bytes(-npy_size % _TAR_BLOCK)
    masks = _padding_masks(window)
    win_bytes = feat * window * out_dtype.itemsize
    std = None if spec.std is None else np.where(spec.std > 0, spec.std, 1.0)
    ar = np.arange(window)
    shard: _ShardFile | None = None
    done = 0
    try:
        for i, key in enumerate(tracks.keys):
            f, g0, n_w = int(tracks.frames[i]), int(tracks.first_window[i]), int(tracks.counts[i])
            ja, jb = max(0, w0 - g0), min(n_w, w1 - g0)
            if ja >= jb:
                continue
            prefix = _key_prefix(key)
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
                if std is not None:  # padding frames stay 0 (padding_mask says which)
                    real = (real.astype(np.float64) - spec.mean) / std
                span = np.zeros((s_b - s_a + window, c, d), dtype=out_dtype)
                span[: stop - s_a] = real
                idx = (np.arange(b - a) * hop)[:, None] + ar[None, :]
                wins = span.reshape(-1, feat)[idx]  # [k, T, C*D]
                data = memoryview(np.ascontiguousarray(wins.transpose(0, 2, 1))).cast("B")
                parts: list[bytes | memoryview] = []
                for j in range(a, b):
                    g = g0 + j
                    if g % mc == 0 or shard is None:
                        if shard is not None:
                            shard.write(parts)
                            parts = []
                            shard.finish()
                        shard = _ShardFile(spec.pattern % (g // mc))
                    start = j * hop
                    n = min(window, f - start)
                    meta = (
                        f'{head}{start}, "frames": {n}, "window_frames": {window}, '
                        f'"seconds_start": {float.__repr__(start / spec.frame_rate)}, '
                        f"{tail}{masks[n]}{end}"
                    ).encode()
                    name = f"{prefix}/{start:08d}"
                    k = j - a
                    parts += (
                        tar_header(f"{name}.json", len(meta)),
                        meta,
                        bytes(-len(meta) % _TAR_BLOCK),
                        tar_header(f"{name}.latent.npy", npy_size),
                        npy_head,
                        data[k * win_bytes : (k + 1) * win_bytes],
                        npy_pad,
                    )
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


# ------------------------------------------------------------------------------ the export
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


def _check_pattern(pattern: str, overwrite: bool) -> Path:
    try:
        a, b = pattern % 0, pattern % 1
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"pattern: expected one %-field for the shard number, e.g. 'shards/%06d.tar'; got {pattern!r}"
        ) from exc
    if a == b:
        raise ConfigError(f"pattern: expected a %-field for the shard number, got {pattern!r}")
    check_free(a, overwrite, "the shards")
    Path(a).parent.mkdir(parents=True, exist_ok=True)
    return Path(a)


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
) -> dict[str, Any]:
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
        scheduler: A Dask scheduler address or scheduler file (:mod:`lincae_core.ops.cluster`).
        progress: Called with the number of tracks finished, as they finish.

    Returns:
        Summary: shard files written, samples, window and hop frames; with ``metadata``, the
        number of exported tracks with and without an entry and of unused entries.
    """
    s = store if isinstance(store, LatentStore) else LatentStore.open(store)
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
    rows = _rows(s, keys)
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
    spec = _Spec(
        store=str(s.path),
        pattern=pattern,
        maxcount=maxcount,
        window=window,
        hop=hop,
        dtype=np.dtype(dtype or s.dtype).name,
        frame_rate=fr,
        sample_rate=geo.sample_rate,
        common_json=json.dumps(common)[1:-1],
        mean=None if norm is None else np.asarray(norm["mean"], np.float64),
        std=None if norm is None else np.asarray(norm["std"], np.float64),
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

    def unit(s0: int, s1: int) -> tuple[_Tracks, int, int]:
        w0, w1 = s0 * maxcount, min(s1 * maxcount, total)
        i0 = int(np.searchsorted(ends, w0, side="right"))
        i1 = int(np.searchsorted(first, w1, side="left"))
        r = rows[i0:i1]
        return (
            _Tracks(
                keys=keys_out[i0:i1],
                offset=table["offset"][r],
                frames=frames[i0:i1],
                samples=table["samples"][r],
                extra=extra[i0:i1],
                first_window=first[i0:i1],
                counts=counts[i0:i1],
            ),
            w0,
            w1,
        )

    shard_names = [pattern % i for i in range(n_shards)]
    try:
        with parallel_backend(jobs, scheduler) as n_jobs:
            per = _shards_per_unit(n_shards, maxcount, n_jobs)
            bounds = [(a, min(a + per, n_shards)) for a in range(0, n_shards, per)]
            if n_jobs == 1:
                results: Any = (_run_unit(spec, *unit(a, b)) for a, b in bounds)
            else:
                par = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
                results = par(joblib.delayed(_run_unit)(spec, *unit(a, b)) for a, b in bounds)
            for n in results:
                if progress is not None and n:
                    progress(n)
    except BaseException:
        for name in shard_names:  # units killed by the abort leave their partial shard
            with contextlib.suppress(OSError):
                Path(f"{name}.partial").unlink(missing_ok=True)
        raise
    summary: dict[str, Any] = {
        "shards": shard_names,
        "samples": total,
        "tracks": len(keys_out),
        "window_frames": window,
        "hop_frames": hop,
        "normalized": normalize,
    }
    if meta is not None:
        summary["metadata"] = {
            "tracks": with_meta,
            "tracks_without": len(keys_out) - with_meta,
            "unused": len(set(meta).difference(keys_out)),
        }
    return summary
