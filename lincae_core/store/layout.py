"""Pure (zarr-free, I/O-free) parts of the latent store format v1: constants, validation, layout.

The format itself is documented in ``docs/store-format.md``; :mod:`lincae_core.store` is the
only package that touches zarr. Everything here works on plain dicts and numpy arrays, so that it
can be tested without a store on disk and so that a malicious store is refused before any of its
numbers are used.

Layout: ``latents[frame, channel, latent_dim]`` (time-major, ``[F, C, D]``); a track ``i`` owns
frames ``offset[i] : offset[i] + frames[i]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from lincae_core.config.geometry import MAX_SAMPLE_RATE, Geometry, checked_int
from lincae_core.errors import StoreFormatError, StoreMismatchError

FORMAT_NAME = "lincae-latents"
# The format attribute of a store in object storage while the command writing it runs: its root
# zarr.json gets FORMAT_NAME only at the commit, when everything else is written
# (docs/store-format.md, "Object storage"), so a killed op leaves nothing taken for finished.
INCOMPLETE_FORMAT = "lincae-latents-incomplete"
TABLE_CHUNK = 65536  # rows per chunk of the track table columns
MAX_TABLE_CHUNK = 2**20  # the most rows a chunk of a table column may hold on open
LOUDNESS = "tracks/loudness_lufs"  # the optional per-track loudness array (LUFS)
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
DTYPES = ("float16", "float32")
STATUS_PLANNED, STATUS_DONE, STATUS_FAILED = 0, 1, 2
STATUS_NAMES = {STATUS_PLANNED: "planned", STATUS_DONE: "done", STATUS_FAILED: "failed"}
# Columns of the track table other than ``key`` (zarr arrays under ``tracks/``) and their dtypes.
TABLE_COLUMNS = {
    "offset": "int64",
    "frames": "int64",
    "samples": "int64",
    "source_rate": "int32",
    "channels": "int8",
    "status": "int8",
}
# Sanity bounds: anything beyond them is treated as a corrupt or malicious store.
MAX_FRAMES = 2**40
MAX_TRACKS = 2**31 - 1
MAX_CHUNK_FRAMES = 2**22
STATUS_CHUNK_MAX = 4096


def validate_attrs(attrs: Any, path: str) -> dict[str, Any]:
    """Check the group attributes of a store and return them as a plain dict.

    Args:
        attrs: The group's attributes (JSON-decoded).
        path: The store path, used in error messages.

    Returns:
        The attributes, with ``geometry`` normalised by :class:`Geometry`.

    Raises:
        StoreFormatError: Not a lincae store, an unsupported version, or malformed attributes.
    """
    if isinstance(attrs, dict) and attrs.get("format") == INCOMPLETE_FORMAT:
        raise StoreFormatError(
            f"{path} is an incomplete lincae store: the command writing it was stopped or is still "
            "running; run that command again (it replaces what was left)"
        )
    if not isinstance(attrs, dict) or attrs.get("format") != FORMAT_NAME:
        raise StoreFormatError(
            f"{path} is not a lincae latent store (expected attribute format='{FORMAT_NAME}')"
        )
    version = attrs.get("format_version")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise StoreFormatError(
            f"{path} has format_version {version!r}; this lincae supports format_version "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    model = attrs.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        raise StoreFormatError(f"{path}: attribute model: expected {{'id': str, 'config': dict}}")
    if not isinstance(model.get("config"), dict):
        raise StoreFormatError(f"{path}: attribute model.config: expected a dict")
    out = dict(attrs)
    out["geometry"] = Geometry.from_dict(attrs.get("geometry"), f"{path}: geometry").to_dict()
    if attrs.get("dtype") not in DTYPES:
        raise StoreFormatError(f"{path}: dtype: expected one of {DTYPES}, got {attrs.get('dtype')!r}")
    if attrs.get("channels") not in (1, 2) or isinstance(attrs.get("channels"), bool):
        raise StoreFormatError(f"{path}: channels: expected 1 or 2, got {attrs.get('channels')!r}")
    enc = attrs.get("encoding")
    if enc is not None and not isinstance(enc, dict):
        raise StoreFormatError(f"{path}: encoding: expected a dict or null, got {enc!r}")
    lineage = attrs.get("lineage")
    if not isinstance(lineage, list) or not all(isinstance(e, dict) for e in lineage):
        raise StoreFormatError(f"{path}: lineage: expected a list of dicts")
    for name in ("store_id", "created"):
        if not isinstance(attrs.get(name), str):
            raise StoreFormatError(f"{path}: {name}: expected a string, got {attrs.get(name)!r}")
    validate_layout_attr(attrs.get("layout"), path)
    return out


def validate_layout_attr(layout: Any, path: str) -> None:
    """Check the ``layout`` attribute (``null`` before :meth:`LatentStore.plan`)."""
    if layout is None:
        return
    if not isinstance(layout, dict):
        raise StoreFormatError(f"{path}: layout: expected a dict or null, got {layout!r}")
    checked_int(layout.get("shards"), f"{path}: layout.shards", 1, MAX_TRACKS)
    checked_int(layout.get("tracks_per_shard"), f"{path}: layout.tracks_per_shard", 1, MAX_TRACKS)


def validate_keys(keys: np.ndarray, where: str) -> None:
    """Refuse keys that are not non-empty, NUL-free, unique strings.

    Args:
        keys: 1-D array of keys (a numpy string dtype).
        where: Names the input in error messages.
    """
    if keys.dtype.kind not in "TU":
        raise StoreFormatError(f"{where}: track keys: expected strings, got dtype {keys.dtype}")
    if keys.size == 0:
        return
    if (np.strings.str_len(keys) == 0).any():
        raise StoreFormatError(f"{where}: track keys: expected non-empty strings, got ''")
    # numpy string search treats "\x00" as empty, so look for NUL in Python
    listed = keys.tolist()
    bad = next((k for k in listed if "\x00" in k), None)
    if bad is not None:
        raise StoreFormatError(f"{where}: track keys: expected no NUL characters, got {bad!r}")
    # uniqueness in Python: numpy 2.4's sort of a StringDType array (np.unique) crashes the process
    # on ~20,000 keys out of order (tests/test_store.py)
    seen: set[str] = set()
    for k in listed:
        if k in seen:
            raise StoreFormatError(f"{where}: track keys: expected unique keys, got duplicate {k!r}")
        seen.add(k)


def validate_latents(
    shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any, attrs: Mapping[str, Any], path: str
) -> None:
    """Check the ``latents`` array's shape ``(F, C, D)``, chunks (or shards) ``(n, C, D)`` and dtype
    against the validated attributes ``attrs`` (zarr's array or the zarr-free reader's metadata)."""
    c, d = attrs["channels"], attrs["geometry"]["latent_dim"]
    if len(shape) != 3 or shape[1:] != (c, d) or shape[0] > MAX_FRAMES:
        raise StoreFormatError(f"{path}: latents: expected shape (F, {c}, {d}), got {shape}")
    if chunks[1:] != (c, d) or not 1 <= chunks[0] <= MAX_CHUNK_FRAMES:
        raise StoreFormatError(f"{path}: latents: expected chunks (n, {c}, {d}), got {chunks}")
    if dtype != np.dtype(attrs["dtype"]):
        raise StoreFormatError(
            f"{path}: latents: expected dtype {attrs['dtype']} (attribute dtype), got {dtype}"
        )


def validate_column_chunks(name: str, chunks: tuple[int, ...], path: str) -> None:
    """Check that the table column ``tracks/<name>`` is 1-D with at most :data:`MAX_TABLE_CHUNK`
    rows a chunk (before any of it is read)."""
    if len(chunks) != 1 or not 1 <= chunks[0] <= MAX_TABLE_CHUNK:
        raise StoreFormatError(
            f"{path}: tracks/{name}: expected a 1-D array with chunks <= {MAX_TABLE_CHUNK}, "
            f"got chunks {chunks}"
        )


def validate_table(table: dict[str, np.ndarray], total_frames: int, geometry: Geometry, where: str) -> None:
    """Check a track table against the latent array it indexes.

    Args:
        table: ``key`` plus every column of :data:`TABLE_COLUMNS`, 1-D arrays of one length.
        total_frames: Length of the latent array ``F``.
        geometry: The store geometry (``samples <= frames * samples_per_frame``).
        where: Names the store in error messages.
    """
    n = table["key"].shape[0]
    for name, dtype in TABLE_COLUMNS.items():
        col = table[name]
        if col.ndim != 1 or col.shape[0] != n:
            raise StoreFormatError(f"{where}: tracks/{name}: expected shape ({n},), got {tuple(col.shape)}")
        if col.dtype != np.dtype(dtype):
            raise StoreFormatError(f"{where}: tracks/{name}: expected {dtype}, got {col.dtype}")
        if (col < 0).any():
            raise StoreFormatError(f"{where}: tracks/{name}: expected values >= 0, got {col.min()}")
    validate_keys(table["key"], where)
    off, fr = table["offset"], table["frames"]
    bad = (off > total_frames) | (fr > total_frames - np.minimum(off, total_frames))
    if bad.any():
        i = int(np.argmax(bad))
        raise StoreFormatError(
            f"{where}: track {str(table['key'][i])!r}: offset {off[i]} + frames {fr[i]} exceeds "
            f"the latent array ({total_frames} frames)"
        )
    order = np.argsort(off, kind="stable")
    if n > 1 and (off[order][:-1] + fr[order][:-1] > off[order][1:]).any():
        raise StoreFormatError(f"{where}: track table: expected non-overlapping track regions")
    if (table["samples"] > fr * geometry.samples_per_frame).any():
        raise StoreFormatError(f"{where}: tracks/samples: expected samples <= frames * samples_per_frame")
    if (table["source_rate"] > MAX_SAMPLE_RATE).any() or (table["status"] > 2).any():
        raise StoreFormatError(f"{where}: tracks/source_rate or tracks/status out of range")


def check_compatible(a: Mapping[str, Any], b: Mapping[str, Any], pair: str, force: bool) -> None:
    """Refuse to combine two stores' attributes unless format, geometry, channels, model agree.

    Only the model (id or config) check yields to ``force``; see ``LatentStore.compatible_with``.
    """
    for name in ("format_version", "geometry", "channels"):
        if a[name] != b[name]:
            raise StoreMismatchError(
                f"{pair} differ in {name}: {a[name]} vs {b[name]} "
                "(latent arithmetic between them is meaningless)"
            )
    if force:
        return
    ida, idb = a["model"]["id"], b["model"]["id"]
    if ida != idb:
        raise StoreMismatchError(
            f"{pair} come from different models ({ida[:12]} vs {idb[:12]}); "
            "use --force / force=True to combine them anyway"
        )
    if a["model"]["config"] != b["model"]["config"]:
        raise StoreMismatchError(f"{pair} differ in model config; use --force / force=True")


@dataclass(frozen=True)
class Layout:
    """Result of :func:`plan_layout`: where each track lives and which shard owns it."""

    offsets: np.ndarray  # (N,) int64
    total_frames: int
    shards: int
    tracks_per_shard: int
    status_chunk: int


def plan_layout(frames: np.ndarray, chunk_frames: int, shards: int = 1) -> Layout:
    """Lay tracks out contiguously, one chunk-aligned region per shard.

    Shard ``s`` owns tracks ``[s*T, (s+1)*T)`` with ``T`` a multiple of the status chunk, and its
    first frame sits on a latent chunk boundary. Hence no latent chunk and no status chunk is
    shared by two shards, and concurrent shard processes never write the same chunk.

    Args:
        frames: ``(N,)`` number of latent frames of each track, in table order.
        chunk_frames: Frames per latent chunk.
        shards: Number of writer processes the layout must keep apart.

    Returns:
        The offsets, total frame count and shard geometry.
    """
    n = int(frames.shape[0])
    if shards < 1:
        raise ValueError(f"shards: expected >= 1, got {shards}")
    per = max(1, math.ceil(n / shards))
    status_chunk = min(STATUS_CHUNK_MAX, per)
    tracks_per_shard = math.ceil(per / status_chunk) * status_chunk
    offsets = np.zeros(n, dtype=np.int64)
    end = 0
    for s0 in range(0, n, tracks_per_shard):
        start = -(-end // chunk_frames) * chunk_frames  # round up to a chunk boundary
        f = frames[s0 : s0 + tracks_per_shard].astype(np.int64)
        offsets[s0 : s0 + f.shape[0]] = start + np.concatenate(([0], np.cumsum(f)[:-1]))
        end = start + int(f.sum())
    return Layout(offsets, end, math.ceil(n / tracks_per_shard) if n else 1, tracks_per_shard, status_chunk)


@dataclass(frozen=True)
class TrackInfo:
    """One row of the track table (``samples`` is the exact length at the model sample rate)."""

    key: str
    offset: int
    frames: int
    samples: int
    source_rate: int
    channels: int
    status: int

    def to_dict(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict."""
        return asdict(self)


class PlanRow(NamedTuple):
    """A row to plan (:meth:`LatentStore.plan`): ``samples`` is the exact length at the model rate,
    ``source_rate`` and ``channels`` those of the source file."""

    key: str
    frames: int
    samples: int
    source_rate: int
    channels: int


def empty_table() -> dict[str, np.ndarray]:
    """A track table with no rows."""
    t = {c: np.zeros(0, dtype=d) for c, d in TABLE_COLUMNS.items()}
    t["key"] = np.array([], dtype=np.dtypes.StringDType())
    return t


def rows_to_table(rows: Sequence[Sequence[Any]], where: str) -> dict[str, np.ndarray]:
    """Turn planning rows (:class:`PlanRow`, or plain ``(key, frames, samples, source_rate,
    channels)`` sequences) into a table.

    Offsets are zero and status is planned; :func:`plan_layout` fills the offsets.
    """
    t = empty_table()
    if len(rows):
        if not all(isinstance(r, (tuple, list)) and len(r) == 5 for r in rows):
            raise StoreFormatError(
                f"{where}: plan: expected rows (key, frames, samples, source_rate, channels)"
            )
        if not all(isinstance(r[0], str) for r in rows):
            raise StoreFormatError(f"{where}: plan: expected string keys")
        cols = list(zip(*rows, strict=True))
        t["key"] = np.array(cols[0], dtype=np.dtypes.StringDType())
        for name, col in zip(("frames", "samples", "source_rate", "channels"), cols[1:], strict=True):
            arr = np.asarray(col, dtype=np.int64)
            hi = np.iinfo(TABLE_COLUMNS[name]).max
            if arr.min() < 0 or arr.max() > hi:
                raise StoreFormatError(f"{where}: plan: {name} out of range [0, {hi}]")
            t[name] = arr.astype(TABLE_COLUMNS[name])
    t["offset"] = np.zeros(len(rows), dtype=np.int64)
    t["status"] = np.zeros(len(rows), dtype=np.int8)
    return t
