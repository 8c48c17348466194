"""The latent store: a Zarr v3 group of format ``lincae-latents`` version 1.

This is the only module that imports zarr. Layout (see ``docs/store-format.md``)::

    STORE/zarr.json             group attrs: format, format_version, model, geometry, ...
    STORE/latents               [F, C, D] float16|float32, chunks (chunk_frames, C, D)
    STORE/tracks/{key,offset,frames,samples,source_rate,channels,status}   1-D, one row a track
    STORE/tracks/loudness_lufs  optional float32 per track (store.annotations)
    STORE/ledger/*.jsonl        failure ledger, one append-only file per writer process

Concurrency: :meth:`LatentStore.plan` gives every shard a chunk-aligned frame region and whole
status chunks, and the ledger has one file per shard, so shard processes never write the same
file. Crash safety: zarr's ``LocalStore`` writes every chunk to a temporary file and renames it
into place, and a track is marked done only after its latents are written.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

import lincae_core.store.layout as sl
from lincae_core.errors import LincaeError, ShapeMismatchError, StoreFormatError
from lincae_core.publish import check_free
from lincae_core.store.annotations import StoreAnnotations
from lincae_core.store.array import LatentArray, member, open_group
from lincae_core.store.layout import TABLE_CHUNK, Geometry, TrackInfo
from lincae_core.store.ledger import append_ledger, read_ledger
from lincae_core.store.lineage import lineage_entry, utc_now
from lincae_core.store.measures import Measures

__all__ = ["Geometry", "LatentArray", "LatentStore", "TrackInfo", "lineage_entry"]

log = logging.getLogger(__name__)
# 16384 frames: 2 MiB chunks for 64-dim mono float16. With direct chunk I/O what is left of the
# per-chunk cost is creating the files and directories (three inodes a chunk): a gain pass over
# 0.5 GB took 0.44 s at 4096 frames, 0.30 s at 16384 and 0.17 s at 65536 (docs/store-format.md,
# "Chunk size"); 16384 keeps a chunk a few MiB for stereo and float32, for other Zarr readers and
# for the padding of shard edges.
DEFAULT_CHUNK_FRAMES = 16384
# Chunk keys c.K.0.0: one file a chunk in latents/ ('/' keys add the directories c/K and c/K/0 to
# every chunk, three inodes instead of one, and fan nothing out: the array is chunked along frames
# only). Any Zarr v3 reader takes either; stores made with '/' keys keep them.
CHUNK_KEY_SEPARATOR = "."
MAX_TABLE_CHUNK = 2**20


class LatentStore(StoreAnnotations, Measures):
    """A latent store on the local file system; create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path, group: Any, mode: str) -> None:
        """Wrap an opened group; use :meth:`open` or :meth:`create` instead."""
        self.path, self.mode, self._group = path, mode, group
        self._attrs = sl.validate_attrs(dict(group.attrs), str(path))
        self._latents = LatentArray(member(group, "latents", path), self._attrs, path)
        self._geometry = Geometry.from_dict(self._attrs["geometry"])
        self._table = self._load_table()
        self._index: dict[str, int] | None = None

    # ----------------------------------------------------------------- creation and opening
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        model_id: str,
        model_config: Mapping[str, Any],
        geometry: Geometry | Mapping[str, Any],
        channels: int,
        dtype: str = "float16",
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        encoding: Mapping[str, Any] | None = None,
        lineage: Sequence[Mapping[str, Any]] = (),
        store_id: str | None = None,
        overwrite: bool = False,
        model_card: Mapping[str, Any] | None = None,
        chunk_key_separator: str | None = None,
    ) -> LatentStore:
        """Create an empty, unplanned store (mode ``r+``); then call :meth:`plan`.

        Args:
            path: Directory of the new store.
            model_id: SHA-256 id of the model that made (or will make) the latents.
            model_config: The model config dict.
            geometry: Sample rate, samples per frame and latent dim (a :class:`Geometry` or dict).
            channels: 1 (mono) or 2 (stereo) latent channels.
            dtype: ``"float16"`` (default) or ``"float32"``.
            chunk_frames: Frames per chunk of the latent array.
            encoding: Encoding window/overlap (``{"window_s", "overlap_s"}``) or None.
            lineage: Lineage records of the operations that produced the store.
            store_id: Identifier of the store (default: a random UUID).
            overwrite: Replace an existing directory at ``path``.
            model_card: What the store keeps of the model's card: its measured linearity and
                trained gain range (:func:`lincae_core.linearity.card_summary`).
            chunk_key_separator: ``"."`` (chunk files ``latents/c.K.0.0``) or ``"/"``
                (``latents/c/K/0/0``); None: ``CHUNK_KEY_SEPARATOR``.

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is false.
            StoreFormatError: a bad argument.
        """
        path = Path(path)
        check_free(path, overwrite)
        geo = geometry if isinstance(geometry, Geometry) else Geometry.from_dict(geometry)
        if not 1 <= chunk_frames <= sl.MAX_CHUNK_FRAMES:
            raise StoreFormatError(f"chunk_frames: expected 1..{sl.MAX_CHUNK_FRAMES}, got {chunk_frames}")
        sep = CHUNK_KEY_SEPARATOR if chunk_key_separator is None else chunk_key_separator
        if sep not in (".", "/"):
            raise StoreFormatError(f"chunk_key_separator: expected '.' or '/', got {sep!r}")
        attrs: dict[str, Any] = {
            "format": sl.FORMAT_NAME,
            "format_version": sl.FORMAT_VERSION,
            "model": {
                "id": model_id,
                "config": dict(model_config),
                **({"card": dict(model_card)} if model_card else {}),
            },
            "geometry": geo.to_dict(),
            "encoding": dict(encoding) if encoding else None,
            "dtype": dtype,
            "channels": channels,
            "lineage": [dict(e) for e in lineage],
            "store_id": store_id or uuid.uuid4().hex,
            "created": utc_now(),
            "layout": None,
        }
        sl.validate_attrs(attrs, str(path))
        group = zarr.open_group(str(path), mode="w")
        group.create_array(
            "latents",
            shape=(0, channels, geo.latent_dim),
            chunks=(chunk_frames, channels, geo.latent_dim),
            dtype=dtype,
            compressors=None,
            fill_value=0,
            chunk_key_encoding={"name": "default", "separator": sep},
        )
        _write_table(group, sl.empty_table(), sl.STATUS_CHUNK_MAX)
        group.attrs.put(attrs)  # last: a crash before this leaves no 'format' attribute
        return cls(path, group, "r+")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: Literal["r", "r+"] = "r") -> LatentStore:
        """Open and validate a store (``mode`` ``"r"`` or ``"r+"``).

        Raises:
            StoreFormatError: Not a lincae store, another format version, or malformed content.
        """
        if mode not in ("r", "r+"):
            raise ValueError(f"mode: expected 'r' or 'r+', got {mode!r}")
        path = Path(path)
        return cls(path, open_group(path, mode), mode)

    def _load_table(self) -> dict[str, np.ndarray]:
        table = {}
        for name in ("key", *sl.TABLE_COLUMNS):
            arr = member(self._group, f"tracks/{name}", self.path)
            if arr.ndim != 1 or not 1 <= arr.chunks[0] <= MAX_TABLE_CHUNK:
                raise StoreFormatError(
                    f"{self.path}: tracks/{name}: expected a 1-D array with "
                    f"chunks <= {MAX_TABLE_CHUNK}, got chunks {arr.chunks}"
                )
            table[name] = arr[:]
        sl.validate_table(table, self.total_frames, self._geometry, str(self.path))
        return table

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
    chunk_frames = property(lambda self: self._latents.chunk_frames, doc="Frames per chunk.")
    total_frames = property(lambda self: self._latents.shape[0], doc="Frames F of the array.")
    n_tracks = property(lambda self: int(self._table["key"].shape[0]), doc="Rows of the table.")

    # ------------------------------------------------------------------------- planning
    def plan(
        self, tracks: Sequence[tuple[str, int, int, int, int]], *, shards: int = 1, loudness: bool = False
    ) -> None:
        """Fix the layout once: a row per ``(key, frames, samples, source_rate, channels)``.

        Tracks are laid out contiguously in the given order; shard ``s`` owns the rows
        :meth:`shard_tracks` returns, in a region that starts on a chunk boundary. Planning an
        already planned store with the same tracks does nothing (so a re-run resumes).
        ``loudness`` adds the per-track ``tracks/loudness_lufs`` array (NaN until measured).

        Raises:
            StoreFormatError: The store is already planned with other tracks, or bad rows.
        """
        self._require_writable()
        table = sl.rows_to_table(tracks, str(self.path))
        if self.layout is not None:
            if all(
                np.array_equal(table[c], self._table[c])
                for c in ("key", "frames", "samples", "source_rate", "channels")
            ):
                return
            raise StoreFormatError(f"{self.path} is already planned with other tracks")
        lay = sl.plan_layout(table["frames"], self.chunk_frames, shards)
        table["offset"] = lay.offsets
        sl.validate_table(table, lay.total_frames, self._geometry, str(self.path))
        _write_table(self._group, table, lay.status_chunk)
        if loudness:
            self._create_loudness(len(table["key"]), lay.status_chunk)
        self._latents.resize(lay.total_frames)
        self._set_attr("layout", {"shards": lay.shards, "tracks_per_shard": lay.tracks_per_shard})
        self._table, self._index = table, None

    def shard_tracks(self, shard: int) -> range:
        """Row indices owned by ``shard`` (empty past the last shard)."""
        t, n = self._require_layout()["tracks_per_shard"], self.n_tracks
        return range(min(shard * t, n), min((shard + 1) * t, n))

    def shard_of(self, index: int) -> int:
        """The shard that owns row ``index``."""
        return int(index) // self._require_layout()["tracks_per_shard"]

    # -------------------------------------------------------------------------- writing
    def cast_latents(self, index: int, z: np.ndarray) -> np.ndarray:
        """``z[frames, C, D]`` of row ``index`` checked and cast to the storage dtype (not written).

        Raises:
            ShapeMismatchError: ``z`` does not have the planned shape.
            LincaeError: Non-finite values (after the cast to the storage dtype).
        """
        t = self.track(index)
        want = (t.frames, self.channels, self._geometry.latent_dim)
        if tuple(z.shape) != want:
            raise ShapeMismatchError(
                f"{self.path}: track {t.key!r}: expected latents of shape {want}, got {tuple(z.shape)}"
            )
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below
            zz = np.asarray(z).astype(self.dtype, copy=False)
        if not np.isfinite(zz).all():
            raise LincaeError(
                f"{self.path}: track {t.key!r}: expected finite latents "
                f"(got NaN/inf after the cast to {self.dtype})"
            )
        return zz

    def write_track(self, index: int, z: np.ndarray) -> None:
        """Write the latents ``z[frames, C, D]`` of row ``index`` (then call :meth:`mark_done`).

        Raises:
            ShapeMismatchError: ``z`` does not have the planned shape.
            LincaeError: Non-finite values (after the cast to the storage dtype).
        """
        self._require_writable()
        self._latents.write(self.track(index).offset, self.cast_latents(index, z))

    def write_tracks(self, indices: Sequence[int], zs: Sequence[np.ndarray]) -> int:
        """Write several rows' latents, rows adjacent in the array in one write each run.

        Many short tracks share a chunk; writing them one by one rewrites that chunk once per
        track, writing a run of adjacent tracks at once rewrites it once. The bytes written are
        the same. Call :meth:`mark_done` afterwards.

        Returns:
            The number of write calls made (runs of adjacent rows).

        Raises:
            ShapeMismatchError, LincaeError: As :meth:`write_track` (nothing is written then).
        """
        self._require_writable()
        parts = sorted(
            (
                (int(self._table["offset"][i]), self.cast_latents(i, z))
                for i, z in zip(indices, zs, strict=True)
            ),
            key=lambda p: p[0],
        )
        runs: list[tuple[int, list[np.ndarray]]] = []
        end = -1
        for offset, z in parts:
            if runs and offset == end:
                runs[-1][1].append(z)
            else:
                runs.append((offset, [z]))
            end = offset + z.shape[0]
        for offset, zz in runs:
            self._latents.write(offset, zz[0] if len(zz) == 1 else np.concatenate(zz))
        return len(runs)

    def mark_done(self, index: int | Sequence[int] | np.ndarray) -> None:
        """Mark rows done; call only after their latents are written."""
        self._set_status(index, sl.STATUS_DONE)

    def mark_failed(self, index: int, reason: str) -> None:
        """Record why row ``index`` failed in its shard's ledger file, then mark it failed."""
        self._require_writable()
        t = self.track(index)
        shard = self.shard_of(index) if self.layout is not None else 0
        self._append_ledger(
            f"shard-{shard:04d}",
            {"key": t.key, "index": int(index), "reason": str(reason), "time": utc_now()},
        )
        self._set_status(index, sl.STATUS_FAILED)

    def record_failure(self, source: str, reason: str, *, writer: str = "plan") -> None:
        """Record an input that never got a row (e.g. unreadable at planning time).

        Args:
            source: The input's key or path.
            reason: Why it failed.
            writer: Names the ledger file (``ledger/<writer>.jsonl``); one writer per process.
        """
        self._require_writable()
        if not writer.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"writer: expected letters, digits, '-' or '_', got {writer!r}")
        self._append_ledger(
            writer, {"key": str(source), "index": None, "reason": str(reason), "time": utc_now()}
        )

    def add_lineage(self, entry: Mapping[str, Any]) -> None:
        """Append a lineage record (see :func:`lineage_entry`)."""
        self._require_writable()
        self._set_attr("lineage", [*self._attrs["lineage"], dict(entry)])

    def _set_status(self, index: Any, status: int) -> None:
        self._require_writable()
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_tracks):
            raise IndexError(f"{self.path}: track index out of range [0, {self.n_tracks})")
        arr = self._group["tracks/status"]
        if idx.size == self.n_tracks and np.array_equal(idx, np.arange(self.n_tracks)):
            arr[:] = np.full(self.n_tracks, status, dtype=np.int8)
        elif idx.size:
            arr[idx] = np.int8(status)
        self._table["status"][idx] = status

    def _set_attr(self, name: str, value: Any) -> None:
        self._attrs[name] = value
        self._group.attrs.put(json.loads(json.dumps(self._attrs)))

    def _append_ledger(self, writer: str, record: dict[str, Any]) -> None:
        append_ledger(self.path / "ledger", writer, record)

    def _require_writable(self) -> None:
        if self.mode != "r+":
            raise LincaeError(f"{self.path} is open read-only (open with mode='r+' to write)")

    def _require_layout(self) -> dict[str, Any]:
        if self.layout is None:
            raise LincaeError(f"{self.path} is not planned yet (call plan() first)")
        return self.layout

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

    def read_track(
        self, key_or_index: str | int, start_frame: int = 0, stop_frame: int | None = None
    ) -> np.ndarray:
        """Read frames ``[start_frame, stop_frame)`` of one track as ``[n, C, D]``."""
        t = self.track(key_or_index)
        stop = t.frames if stop_frame is None else stop_frame
        if not 0 <= start_frame <= stop <= t.frames:
            raise IndexError(
                f"{self.path}: track {t.key!r}: frame range [{start_frame}, {stop}) outside [0, {t.frames})"
            )
        return self._latents.read(t.offset + start_frame, t.offset + stop)

    def iter_blocks(
        self, key_or_index: str | int, block_frames: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stream a track as ``(start_frame, z[n, C, D])`` blocks cut at chunk boundaries."""
        t = self.track(key_or_index)
        cf = self.chunk_frames
        bf = max(cf, (block_frames or 16 * cf) // cf * cf)
        pos = t.offset
        while pos < t.offset + t.frames:
            end = min((pos // bf + 1) * bf, t.offset + t.frames)
            yield pos - t.offset, self._latents.read(pos, end)
            pos = end

    def is_complete(self) -> bool:
        """True when the store is planned and no row is still planned (all done or failed)."""
        return self.layout is not None and not (self.table()["status"] == sl.STATUS_PLANNED).any()

    def ledger(self) -> list[dict[str, Any]]:
        """Failure records still current: failed rows (latest reason) and unplanned inputs."""
        return read_ledger(self.path / "ledger", self.table()["status"])

    def describe(self) -> dict[str, Any]:
        """Summary for ``lincae info STORE`` (JSON-ready)."""
        t = self.table()
        done = t["status"] == sl.STATUS_DONE
        a = self.attrs
        return {
            "path": str(self.path),
            "format": a["format"],
            "format_version": a["format_version"],
            "store_id": a["store_id"],
            "created": a["created"],
            "model": a["model"],
            "geometry": a["geometry"],
            "channels": a["channels"],
            "dtype": a["dtype"],
            "chunk_frames": self.chunk_frames,
            "encoding": a["encoding"],
            "layout": a["layout"],
            "tracks": self.n_tracks,
            "status": {name: int((t["status"] == s).sum()) for s, name in sl.STATUS_NAMES.items()},
            "total_frames": self.total_frames,
            "duration_s": float(t["samples"][done].sum() / self._geometry.sample_rate),
            "nbytes": self.total_frames
            * self.channels
            * self._geometry.latent_dim
            * np.dtype(self.dtype).itemsize,
            "failures": [
                {"key": r["key"], "reason": r["reason"], "planning": r.get("index") is None}
                for r in self.ledger()
            ],
            "lineage": a["lineage"],
        }

    def compatible_with(self, other: LatentStore, force: bool = False) -> None:
        """Refuse to combine with ``other`` unless format, geometry, channels and model agree.

        Only a model mismatch (id or config) can be forced; a geometry, channel or format
        mismatch makes latent arithmetic meaningless and is always refused.

        Raises:
            StoreMismatchError: Naming both stores and the differing field.
        """
        sl.check_compatible(self._attrs, other._attrs, f"{self.path} and {other.path}", force)


def _write_table(group: Any, table: dict[str, np.ndarray], status_chunk: int) -> None:
    n = table["key"].shape[0]
    for name in ("key", *sl.TABLE_COLUMNS):
        chunk = status_chunk if name == "status" else TABLE_CHUNK
        dtype = str if name == "key" else sl.TABLE_COLUMNS[name]
        arr = group.create_array(
            f"tracks/{name}",
            shape=(n,),
            chunks=(max(1, min(chunk, n)),),
            dtype=dtype,
            overwrite=True,
            **({} if name == "key" else {"compressors": None, "fill_value": 0}),
        )
        if n:
            arr[:] = table[name]
