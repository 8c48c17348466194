"""What every part of a latent store stands on: the opened group, its validated attributes,
the latent array and the track table (:class:`StoreBase`, the base of
:class:`~lincae_core.store.LatentStore` and of its parts, :mod:`~lincae_core.store.writing`,
:mod:`~lincae_core.store.sources_origin` and :mod:`~lincae_core.store.loudness_stats`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import lincae_core.store.layout as sl
from lincae_core.config.geometry import Geometry
from lincae_core.errors import LincaeError, StoreFormatError, StoreReplacedError
from lincae_core.location import Location, storage_errors
from lincae_core.store.array import LatentArray
from lincae_core.store.group import member
from lincae_core.store.layout import TrackInfo
from lincae_core.store.table import load_table

__all__ = ["StoreBase"]


class StoreBase:
    """An opened store: attributes, properties and the rows of its track table."""

    def __init__(self, path: Location, group: Any, mode: str, attrs: dict[str, Any] | None = None) -> None:
        """Wrap an opened group; use :meth:`LatentStore.open` or :meth:`LatentStore.create` instead.

        ``attrs``: the attributes of a store not committed yet (its root holds
        ``INCOMPLETE_FORMAT`` until :meth:`commit`)."""
        self.path, self.mode, self._group = path, mode, group
        self._committed = attrs is None
        self._attrs = sl.validate_attrs(dict(group.attrs) if attrs is None else attrs, str(path))
        self._latents = LatentArray(member(group, "latents", path), self._attrs, path)
        self._geometry = Geometry.from_dict(self._attrs["geometry"])
        self._table = load_table(group, path, self.total_frames, self._geometry)
        self._index: dict[str, int] | None = None

    # ----------------------------------------------------------------------- properties
    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the validated group attributes."""
        return json.loads(json.dumps(self._attrs))

    store_id = property(lambda self: self._attrs["store_id"], doc="Identifier of this store.")
    model_id = property(lambda self: self._attrs["model"]["id"], doc="SHA-256 model id.")
    model_config = property(lambda self: self._attrs["model"]["config"], doc="Model config.")
    model_card = property(
        lambda self: dict(self._attrs["model"].get("card") or {}),
        doc="The model's card summary recorded at encode time ({} when none).",
    )
    channels = property(lambda self: self._attrs["channels"], doc="Latent channels C.")
    dtype = property(lambda self: self._attrs["dtype"], doc="Storage dtype name.")
    lineage = property(lambda self: self.attrs["lineage"], doc="Lineage records (a copy).")
    encoding = property(lambda self: self._attrs.get("encoding"), doc="Encoding window/overlap.")
    format_version = property(lambda self: self._attrs["format_version"], doc="Format version.")
    layout = property(lambda self: self._attrs.get("layout"), doc="Shard layout or None.")
    chunk_key_separator = property(
        lambda self: self._latents.chunk_key_separator, doc="Separator of the latent chunk keys ('.' or '/')."
    )
    geometry = property(lambda self: self._geometry, doc="The store :class:`Geometry`.")
    latents = property(lambda self: self._latents, doc="The :class:`LatentArray`.")
    chunk_frames = property(
        lambda self: self._latents.chunk_frames, doc="Frames per stored object (a chunk, or a Zarr shard)."
    )
    chunks_per_object = property(
        lambda self: self._latents.chunks_per_object,
        doc="Chunks per stored object (Zarr v3 sharding; 1: none).",
    )
    checksums = property(
        lambda self: self._latents.checksums,
        doc="'crc32c' when every latent chunk carries a checksum checked on read, else None.",
    )
    total_frames = property(lambda self: self._latents.shape[0], doc="Frames F of the array.")
    n_tracks = property(lambda self: int(self._table["key"].shape[0]), doc="Rows of the table.")

    # -------------------------------------------------------------------------- reading
    def table(self) -> dict[str, np.ndarray]:
        """The whole track table as 1-D arrays (copies), status re-read from disk."""
        self._table["status"] = self._group["tracks/status"][:]
        return {k: v.copy() for k, v in self._table.items()}

    def keys(self) -> list[str]:
        """Track keys in table order."""
        return self._table["key"].tolist()

    def index_of(self, key: str) -> int:
        """Row index of ``key``; raises KeyError naming the store."""
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.keys())}
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(f"{self.path}: no track with key {key!r}") from None

    def track(self, key_or_index: str | int) -> TrackInfo:
        """The :class:`TrackInfo` of a row, by key or index."""
        i = self.index_of(key_or_index) if isinstance(key_or_index, str) else int(key_or_index)
        if not 0 <= i < self.n_tracks:
            raise IndexError(f"{self.path}: track index {i} out of range [0, {self.n_tracks})")
        t = self._table
        return TrackInfo(key=str(t["key"][i]), **{c: int(t[c][i]) for c in sl.TABLE_COLUMNS})

    def tracks(self, status: int | None = None) -> list[TrackInfo]:
        """All rows (or those with ``status``) as :class:`TrackInfo`."""
        st = self.table()["status"]
        return [self.track(i) for i in range(self.n_tracks) if status is None or st[i] == status]

    def _set_attr(self, name: str, value: Any) -> None:
        self._attrs[name] = value
        self._put_attrs()

    def _put_attrs(self) -> None:
        attrs = json.loads(json.dumps(self._attrs))
        if not self._committed:
            attrs["format"] = sl.INCOMPLETE_FORMAT
        with storage_errors(self.path, "write the store's attributes"):
            self._group.attrs.put(attrs)

    def commit(self) -> None:
        """Make an uncommitted store visible: write its root attributes with the format name, the
        last write of a command (a no-op for a committed store)."""
        if not self._committed:
            self._committed = True
            self._put_attrs()

    def check_writer(self) -> None:
        """Refuse to write into a store that another writer replaced since this one opened it.

        The store id is the writer token: every process writing one store (the shards of one
        encode) holds the id it opened, and ``--overwrite`` (or any other replacement) makes a
        new store with a new id. Read before every latent write, status write and ledger record
        (one small read of the root; one GET in object storage), so an older writer stops with
        one line before it writes anything more, and no lock is needed (there is none on a
        bucket).

        Raises:
            StoreReplacedError: The root at this path is another store now (or none).
        """
        try:
            root = json.loads((self.path / "zarr.json").read_bytes())
            now = root.get("attributes", {}).get("store_id")
        except OSError as exc:  # gone is "no store"; any other failure (the network) is itself
            if not isinstance(exc, FileNotFoundError) and not isinstance(exc.__cause__, FileNotFoundError):
                raise
            now = None
        except (ValueError, AttributeError):
            now = None
        if now != self.store_id:
            what = f"store {now[:12]}" if isinstance(now, str) else "no store"
            raise StoreReplacedError(
                f"{self.path} was replaced while this process wrote it (store {self.store_id[:12]} is "
                f"now {what}, e.g. by --overwrite); stopped before writing more: run this command "
                "again to resume into the store that is there, or choose another output"
            )

    @contextmanager
    def _writing(self, checked: bool = False) -> Iterator[None]:
        """Check the writer token, run the writes inside, check it again, and tell a store replaced
        meanwhile from another failure of the machine: an opened local store is pinned to its
        directory (:mod:`lincae_core.store.group`), so a replacement's writes land in the old,
        renamed-away directory or fail there (it is deleted), never in the new store.

        ``checked``: the token was just checked (by the caller, or after the previous write of a
        loop): the first check is not repeated."""
        if not checked:
            self.check_writer()
        try:
            yield
        except (OSError, KeyError):  # KeyError: zarr finds no member in a deleted directory
            self.check_writer()  # StoreReplacedError where the store was replaced
            raise
        self.check_writer()  # replaced while writing: stop before anything more is written

    @property
    def _directory(self) -> Location:
        """Where this process writes the store's own files (the ledger): the pinned directory of a
        local store opened for writing, else its path."""
        root = getattr(self._group.store, "root", None)  # a local store's (pinned or not); None: a URL
        return self.path if root is None else Path(root)

    def _optional_column(self, name: str, dtype: str) -> np.ndarray | None:
        """An optional per-track array (one value a row: loudness, input fingerprints) read and
        checked, or None for a store without it."""
        try:
            arr = self._group[name]
        except KeyError:
            return None
        out = np.asarray(arr[:], dtype=dtype)
        if out.shape != (self.n_tracks,):
            raise StoreFormatError(f"{self.path}: {name}: expected shape ({self.n_tracks},), got {out.shape}")
        return out

    def _require_writable(self) -> None:
        if self.mode != "r+":
            raise LincaeError(f"{self.path} is open read-only (open with mode='r+' to write)")

    def _require_layout(self) -> dict[str, Any]:
        if self.layout is None:
            raise LincaeError(f"{self.path} is not planned yet (call plan() first)")
        return self.layout
