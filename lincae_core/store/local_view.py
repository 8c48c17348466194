"""A zarr-free, read-only view of a local store: what ``lincae ls`` and ``lincae info`` read.

Importing zarr (and numcodecs with it) was most of those commands' start-up (docs/store-format.md,
"Start-up: what a command imports"), yet what they read is a few small files whose format Zarr v3
fixes: the root attributes (``zarr.json``), the metadata of the ``latents`` array (none of its
chunks), the track table under ``tracks/``, the optional per-track loudness, a mix's sources and
the ledger. :func:`open_view` reads them here when every array has the plain layout lincae writes:
Zarr v3, a regular chunk grid, default chunk keys with ``/`` or ``.``, numbers in the single
``bytes`` codec little-endian (the latents may add ``crc32c``: their chunks are not read here),
strings in the single ``vlen-utf8`` codec, no storage transformer, no consolidated metadata. Each
chunk file is read as zarr reads it: a missing one holds the array's fill value, numbers are the
C-order bytes of the whole chunk (edge chunks padded), strings are numcodecs' VLenUTF8 format (a
little-endian uint32 count, then for each item a uint32 byte length and its UTF-8 bytes).

Anything else (a URL, another codec such as the zstd keys of stores made before keys were written
uncompressed, sharding, Zarr v2, a metadata field it does not know) opens the store through zarr
(:class:`~lincae_core.store.latent_store.LatentStore`) instead, silently and with the same results;
``LINCAE_ZARR_IO=1`` forces that path. The checks are the zarr path's own
(:mod:`~lincae_core.store.layout`, in the same order), and a damaged chunk of the table stops with
one line naming it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

import lincae_core.store.layout as sl
from lincae_core.config.geometry import Geometry
from lincae_core.errors import StoreFormatError
from lincae_core.location import RemotePath, as_location
from lincae_core.store.layout import LOUDNESS
from lincae_core.store.ledger import read_ledger

if TYPE_CHECKING:
    from lincae_core.store.latent_store import LatentStore

__all__ = ["ArrayMeta", "LocalStoreView", "describe_store", "open_view"]

_NUMBERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_FLOATS = ("float16", "float32", "float64")
_FLOAT_FILLS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_ARRAY_FIELDS = {
    "zarr_format",
    "node_type",
    "shape",
    "data_type",
    "chunk_grid",
    "chunk_key_encoding",
    "fill_value",
    "codecs",
    "attributes",
    "storage_transformers",
    "dimension_names",
}
_GROUP_FIELDS = {"zarr_format", "node_type", "attributes", "consolidated_metadata"}
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)  # zarr's LocalStore: no object
_U32 = struct.Struct("<I")


class _Unsupported(Exception):
    """Something the view does not read exactly as zarr does: the store goes through zarr."""


class ArrayMeta(NamedTuple):
    """What the view takes from an array's ``zarr.json``."""

    shape: tuple[int, ...]
    dtype: np.dtype  # numpy's StringDType for Zarr's "string"
    chunks: tuple[int, ...]
    separator: str  # of the default chunk keys: "/" (c/0/1) or "." (c.0.1)
    fill: Any
    checksums: bool  # a crc32c codec after bytes (the latents of `encode --checksums`)


def _need(ok: bool) -> None:
    if not ok:
        raise _Unsupported


def _is_int(x: Any, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _json(file: Path) -> dict[str, Any] | None:
    """The JSON object in ``file``, or None where zarr's ``LocalStore`` finds no object."""
    try:
        raw = file.read_bytes()
    except _MISSING:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        raise _Unsupported from None
    _need(isinstance(meta, dict))
    return meta


def _fill(value: Any, dtype: np.dtype) -> Any:
    """The fill value of a ``zarr.json`` as a value of ``dtype`` (strings, numbers, NaN and infinities)."""
    if dtype.kind == "T":
        _need(isinstance(value, str))
        return value
    if dtype.kind == "f":
        if isinstance(value, str):
            _need(value in _FLOAT_FILLS)
            return _FLOAT_FILLS[value]
        _need(isinstance(value, (int, float)) and not isinstance(value, bool))
        return value
    _need(_is_int(value, int(np.iinfo(dtype).min)) and value <= np.iinfo(dtype).max)
    return value


def array_meta(meta: dict[str, Any], checksums: bool = False) -> ArrayMeta:
    """Parse an array's ``zarr.json`` (the object), or raise ``_Unsupported`` for anything but the
    plain layout (``checksums``: a ``crc32c`` codec after ``bytes`` is allowed: the latents)."""
    try:
        _need(set(meta) <= _ARRAY_FIELDS and meta["zarr_format"] == 3 and meta["node_type"] == "array")
        _need(not meta.get("storage_transformers") and isinstance(meta.get("attributes", {}), dict))
        shape, grid, keys = meta["shape"], meta["chunk_grid"], meta["chunk_key_encoding"]
        _need(grid["name"] == "regular" and set(grid["configuration"]) == {"chunk_shape"})
        chunks = grid["configuration"]["chunk_shape"]
        _need(isinstance(shape, list) and isinstance(chunks, list) and len(shape) == len(chunks))
        _need(all(_is_int(n, 0) for n in shape) and all(_is_int(n, 1) for n in chunks))
        _need(keys["name"] == "default" and set(keys.get("configuration", {})) <= {"separator"})
        sep = keys.get("configuration", {}).get("separator", "/")
        _need(sep in ("/", "."))
        kind = meta["data_type"]
        _need(kind in (*_NUMBERS, *_FLOATS, "string"))
        dtype = np.dtypes.StringDType() if kind == "string" else np.dtype(kind)
        codecs = [(c["name"], c.get("configuration") or {}) for c in meta["codecs"]]
        crc = checksums and codecs[1:] == [("crc32c", {})]
        _need(len(codecs) == 1 or crc)
        name, config = codecs[0]
        if kind == "string":
            _need(name == "vlen-utf8" and config == {})
        else:  # one byte needs no byte order
            _need(
                name == "bytes" and config in ({"endian": "little"}, *([{}] if dtype.itemsize == 1 else []))
            )
        return ArrayMeta(tuple(shape), dtype, tuple(chunks), sep, _fill(meta["fill_value"], dtype), crc)
    except (KeyError, TypeError, AttributeError, IndexError):
        raise _Unsupported from None


def read_array(root: Path, name: str, meta: ArrayMeta, where: str) -> np.ndarray:
    """Every value of the array ``name`` under ``root``, chunk by chunk, as zarr's ``array[:]``."""
    out = np.full(meta.shape, meta.fill, dtype=meta.dtype)
    per_chunk = math.prod(meta.chunks)
    grid = [range(-(-n // c)) for n, c in zip(meta.shape, meta.chunks, strict=True)]
    for idx in itertools.product(*grid):
        key = "c" + "".join(meta.separator + str(i) for i in idx)
        try:
            data = (root / name / key).read_bytes()
        except _MISSING:
            continue  # never written (or all fill value, which zarr does not store): the fill value
        what = f"{where}: {name}: chunk file {key}"
        chunk = _decode(data, meta.dtype, per_chunk, what).reshape(meta.chunks)
        region = tuple(
            slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, meta.chunks, meta.shape, strict=True)
        )
        out[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    return out


def _decode(data: bytes, dtype: np.dtype, n: int, what: str) -> np.ndarray:
    """The ``n`` values of one chunk file (``what`` names it in errors)."""
    if dtype.kind == "T":
        return np.array(_vlen_utf8(data, n, what), dtype=dtype)
    size = n * dtype.itemsize
    if len(data) != size:
        raise StoreFormatError(f"{what} is damaged: {len(data)} bytes, expected {size} (a partial copy?)")
    return np.frombuffer(data, dtype.newbyteorder("<")).astype(dtype)


def _vlen_utf8(data: bytes, n: int, what: str) -> list[str]:
    """Decode numcodecs' VLenUTF8 bytes (bytes after the last item are ignored, as numcodecs does)."""
    count = _U32.unpack_from(data, 0)[0] if len(data) >= 4 else None
    if count != n:
        got = "no header" if count is None else f"{count} strings"
        raise StoreFormatError(f"{what} is damaged: {got}, expected {n} strings (a partial copy?)")
    items, pos, end = [], 4, len(data)
    try:
        for _ in range(n):
            (size,) = _U32.unpack_from(data, pos)
            pos += 4
            if pos + size > end:
                raise struct.error
            items.append(data[pos : pos + size].decode("utf-8"))
            pos += size
    except struct.error:
        raise StoreFormatError(f"{what} is damaged: truncated after {len(items)} of {n} strings") from None
    except UnicodeDecodeError as exc:
        raise StoreFormatError(
            f"{what} is damaged: string {len(items)} is not UTF-8 ({exc.reason})"
        ) from None
    return items


class LocalStoreView:
    """A local store read without zarr (see the module docstring): what ``ls`` and ``info`` use of
    :class:`~lincae_core.store.latent_store.LatentStore`, read and checked at once."""

    def __init__(self, path: Path) -> None:
        """Read and check the store at ``path``; raises ``_Unsupported`` where zarr must read it."""
        self.path, where = path, str(path)
        root = _json(path / "zarr.json")
        if root is None:
            raise _Unsupported
        _need(set(root) <= _GROUP_FIELDS and root.get("consolidated_metadata") is None)
        _need(root.get("zarr_format") == 3 and root.get("node_type") == "group")
        _need(isinstance(root.get("attributes", {}), dict))
        self._attrs = sl.validate_attrs(root.get("attributes", {}), where)
        self._latents = self._meta("latents", checksums=True)
        lat = self._latents
        sl.validate_latents(lat.shape, lat.chunks, lat.dtype, self._attrs, where)
        self._geometry = Geometry.from_dict(self._attrs["geometry"])
        self._table: dict[str, np.ndarray] = {}
        self._columns: dict[str, ArrayMeta] = {}
        for name in ("key", *sl.TABLE_COLUMNS):
            meta = self._columns[name] = self._meta(f"tracks/{name}")
            sl.validate_column_chunks(name, meta.chunks, where)
            self._table[name] = read_array(path, f"tracks/{name}", meta, where)
        sl.validate_table(self._table, lat.shape[0], self._geometry, where)
        # read now, so that anything zarr must read sends the whole store there; a check that
        # fails is raised where the zarr path raises it: when asked for
        self._loudness = _later(self._optional_column, LOUDNESS, "float32")
        self._sources = _later(self._read_sources)

    def _meta(self, name: str, checksums: bool = False) -> ArrayMeta:
        meta = _json(self.path / name / "zarr.json")
        if meta is None:  # zarr words a missing array
            raise _Unsupported
        return array_meta(meta, checksums)

    # ----------------------------------------------------- what LatentStore has (read-only)
    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the validated group attributes."""
        return json.loads(json.dumps(self._attrs))

    store_id = property(lambda self: self._attrs["store_id"], doc="Identifier of this store.")
    channels = property(lambda self: self._attrs["channels"], doc="Latent channels C.")
    dtype = property(lambda self: self._attrs["dtype"], doc="Storage dtype name.")
    layout = property(lambda self: self._attrs.get("layout"), doc="Shard layout or None.")
    geometry = property(lambda self: self._geometry, doc="The store :class:`Geometry`.")
    chunk_frames = property(lambda self: self._latents.chunks[0], doc="Frames per latent chunk.")
    chunks_per_object = property(lambda self: 1, doc="Chunks per stored object (sharded: read by zarr).")
    chunk_key_separator = property(lambda self: self._latents.separator, doc="'.' or '/'.")
    checksums = property(lambda self: "crc32c" if self._latents.checksums else None, doc="'crc32c' or None.")
    total_frames = property(lambda self: self._latents.shape[0], doc="Frames F of the array.")
    n_tracks = property(lambda self: int(self._table["key"].shape[0]), doc="Rows of the table.")

    def table(self) -> dict[str, np.ndarray]:
        """The whole track table as 1-D arrays (copies), status re-read from disk."""
        self._table["status"] = read_array(
            self.path, "tracks/status", self._columns["status"], str(self.path)
        )
        return {k: v.copy() for k, v in self._table.items()}

    def keys(self) -> list[str]:
        """Track keys in table order."""
        return self._table["key"].tolist()

    def ledger(self) -> list[dict[str, Any]]:
        """Failure records still current: failed rows (latest reason) and unplanned inputs."""
        return read_ledger(self.path / "ledger", self.table()["status"])

    def loudness(self) -> np.ndarray | None:
        """Per-track integrated loudness in LUFS (float32, NaN: unmeasured), or None if absent."""
        return _raise_or(self._loudness)

    def sources(self) -> dict[str, Any] | None:
        """``{"inputs": [...], "key": [N, K], "gain": [N, K]}`` of a mix store, else None."""
        return _raise_or(self._sources)

    def describe(self) -> dict[str, Any]:
        """Summary for ``lincae info STORE`` (JSON-ready), as :meth:`LatentStore.describe`."""
        return describe_store(self)

    def _optional_column(self, name: str, dtype: str) -> np.ndarray | None:
        found = _json(self.path / name / "zarr.json")
        if found is None:
            return None
        meta = array_meta(found)
        if meta.shape != (self.n_tracks,):  # the zarr path's check, before anything is read
            raise StoreFormatError(
                f"{self.path}: {name}: expected shape ({self.n_tracks},), got {meta.shape}"
            )
        return np.asarray(read_array(self.path, name, meta, str(self.path)), dtype=dtype)

    def _read_sources(self) -> dict[str, Any] | None:
        meta = self._attrs.get("sources")
        if not isinstance(meta, dict) or not isinstance(meta.get("inputs"), list):
            return None
        found = {}
        for name in ("sources/key", "sources/gain"):
            m = _json(self.path / name / "zarr.json")
            if m is None:
                raise StoreFormatError(f"{self.path}: missing array '{name}'")
            found[name] = array_meta(m)
        shape = (self.n_tracks, len(meta["inputs"]))
        if any(m.shape != shape for m in found.values()):
            raise StoreFormatError(f"{self.path}: sources: expected shape {shape}")
        keys, gains = (read_array(self.path, n, m, str(self.path)) for n, m in found.items())
        return {"inputs": list(meta["inputs"]), "key": keys, "gain": gains}


def _later(read: Any, *args: Any) -> Any:
    """``read(*args)``, or the ``StoreFormatError`` it raised (raised when the value is asked for)."""
    try:
        return read(*args)
    except StoreFormatError as exc:
        return exc


def _raise_or(value: Any) -> Any:
    if isinstance(value, StoreFormatError):
        raise value
    return value


def describe_store(store: LocalStoreView | LatentStore) -> dict[str, Any]:
    """The summary of ``lincae info STORE`` (JSON-ready) of an opened store or view."""
    t = store.table()
    done = t["status"] == sl.STATUS_DONE
    a = store.attrs
    return {
        "path": str(store.path),
        "format": a["format"],
        "format_version": a["format_version"],
        "store_id": a["store_id"],
        "created": a["created"],
        "model": a["model"],
        "geometry": a["geometry"],
        "channels": a["channels"],
        "dtype": a["dtype"],
        "chunk_frames": store.chunk_frames,
        "chunks_per_object": store.chunks_per_object,
        "checksums": store.checksums,
        "encoding": a["encoding"],
        "layout": a["layout"],
        "tracks": store.n_tracks,
        "status": {name: int((t["status"] == s).sum()) for s, name in sl.STATUS_NAMES.items()},
        "total_frames": store.total_frames,
        "duration_s": float(t["samples"][done].sum() / store.geometry.sample_rate),
        "nbytes": store.total_frames
        * store.channels
        * store.geometry.latent_dim
        * np.dtype(store.dtype).itemsize,
        "failures": [
            {"key": r["key"], "reason": r["reason"], "planning": r.get("index") is None}
            for r in store.ledger()
        ],
        "lineage": a["lineage"],
    }


def open_view(
    path: str | os.PathLike | RemotePath, zarr_io: bool | None = None
) -> LocalStoreView | LatentStore:
    """The store at ``path`` opened for reading: a :class:`LocalStoreView` where it reads the store
    exactly as zarr does, else the :class:`~lincae_core.store.latent_store.LatentStore` opened
    through zarr (``zarr_io``: True always; None: when the environment has ``LINCAE_ZARR_IO=1``).

    Raises:
        StoreFormatError: Not a lincae store, another format version, or malformed content.
    """
    where = as_location(path)
    if zarr_io is None:
        zarr_io = os.environ.get("LINCAE_ZARR_IO") == "1"
    if not zarr_io and isinstance(where, Path) and where.is_dir():
        try:
            return LocalStoreView(where)
        except _Unsupported:
            pass
    from lincae_core.store.latent_store import LatentStore  # zarr: only where the view cannot read

    return LatentStore.open(where)
