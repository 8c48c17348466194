"""The latent store: a Zarr v3 group of format ``lincae-latents`` version 1.

:class:`LatentStore` creates, opens and reads a store; its writer's side is
:class:`~lincae_core.store.writing.StoreWriting`, its optional members
:class:`~lincae_core.store.sources_origin.SourcesAndOrigin` and
:class:`~lincae_core.store.loudness_stats.LoudnessAndStats`. Layout (see ``docs/store-format.md``)::

    STORE/zarr.json             group attrs: format, format_version, model, geometry, ...
    STORE/latents               [F, C, D] float16|float32, chunks (chunk_frames, C, D)
    STORE/tracks/{key,offset,frames,samples,source_rate,channels,status}   1-D, one row a track
    STORE/tracks/loudness_lufs  optional float32 per track (store.loudness_stats)
    STORE/ledger/*.jsonl        failure ledger, one append-only file per writer process

Concurrency: planning (:meth:`~lincae_core.store.writing.StoreWriting.plan`) gives every shard a
chunk-aligned frame region and whole status chunks, and the ledger has one file per shard, so
shard processes never write the same file. Crash safety: zarr's ``LocalStore`` writes every chunk
to a temporary file and renames it into place, and a track is marked done only after its latents
are written.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import zarr

import lincae_core.store.layout as sl
from lincae_core.config.geometry import Geometry
from lincae_core.errors import StoreFormatError
from lincae_core.location import Location, RemotePath, as_location, storage_errors
from lincae_core.publish import check_free
from lincae_core.store.chunk_files import checksum_codecs
from lincae_core.store.group import open_group, zarr_store
from lincae_core.store.ledger import read_ledger
from lincae_core.store.lineage import utc_now
from lincae_core.store.local_view import describe_store
from lincae_core.store.loudness_stats import LoudnessAndStats
from lincae_core.store.sources_origin import SourcesAndOrigin
from lincae_core.store.table import write_table
from lincae_core.store.writing import StoreWriting

__all__ = [
    "CHUNK_KEY_SEPARATOR",
    "DEFAULT_CHUNK_FRAMES",
    "FrameBlock",
    "LatentStore",
    "StoreLike",
    "open_store",
]

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


class FrameBlock(NamedTuple):
    """A block of a track's latents: its first frame (in the track) and the frames ``[n, C, D]``."""

    start: int
    latents: np.ndarray


class LatentStore(StoreWriting, SourcesAndOrigin, LoudnessAndStats):
    """A latent store in a local folder or at a URL (``s3://...``); create with :meth:`create`,
    open with :meth:`open`."""

    # ----------------------------------------------------------------- creation and opening
    @classmethod
    def create(
        cls,
        path: str | os.PathLike | RemotePath,
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
        commit: bool = True,
        chunks_per_object: int = 1,
        checksums: bool = False,
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
            chunks_per_object: Zarr v3 sharding: each stored object (of ``chunk_frames`` frames)
                holds this many chunks, read one by one with range requests (1: one object a
                chunk, no sharding). Fewer objects for a store of small chunks in object storage
                (docs/store-format.md, "Object storage").
            checksums: Store a CRC32C after every latent chunk (Zarr v3's ``crc32c`` codec; inside
                the shards with ``chunks_per_object`` > 1), checked on every read: a bit flip is
                then found like a missing chunk (:mod:`lincae_core.store.damage`).
            commit: False: the root keeps the format ``lincae-latents-incomplete`` (no reader
                takes it for a store) until :meth:`commit`; what object-storage outputs do, as
                they cannot be renamed into place when complete.

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is false.
            StoreFormatError: a bad argument.
        """
        path = as_location(path)
        check_free(path, overwrite)
        geo = geometry if isinstance(geometry, Geometry) else Geometry.from_dict(geometry)
        if not 1 <= chunk_frames <= sl.MAX_CHUNK_FRAMES:
            raise StoreFormatError(f"chunk_frames: expected 1..{sl.MAX_CHUNK_FRAMES}, got {chunk_frames}")
        if chunks_per_object < 1 or chunk_frames % chunks_per_object:
            raise StoreFormatError(
                f"chunks_per_object: expected a divisor of chunk_frames ({chunk_frames}), "
                f"got {chunks_per_object}"
            )
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
        with storage_errors(path, "create the store"):
            return cls._create_group(
                path, attrs, channels, geo, (chunk_frames, chunks_per_object), dtype, sep, commit, checksums
            )

    @classmethod
    def _create_group(
        cls,
        path: Location,
        attrs: dict[str, Any],
        channels: int,
        geo: Geometry,
        object_chunks: tuple[int, int],
        dtype: str,
        sep: str,
        commit: bool,
        checksums: bool = False,
    ) -> LatentStore:
        chunk_frames, per_object = object_chunks
        group = zarr.open_group(zarr_store(path, "w"), mode="w")
        frame = (channels, geo.latent_dim)
        sharding: dict[str, Any] = {"shards": (chunk_frames, *frame)} if per_object > 1 else {}
        group.create_array(
            "latents",
            shape=(0, *frame),
            chunks=(chunk_frames // per_object, *frame),
            **sharding,
            dtype=dtype,
            compressors=checksum_codecs(checksums),
            fill_value=0,
            chunk_key_encoding={"name": "default", "separator": sep},
        )
        write_table(group, sl.empty_table(), sl.STATUS_CHUNK_MAX)
        if commit:
            group.attrs.put(attrs)  # last: a crash before this leaves no 'format' attribute
            return cls(path, group, "r+")
        group.attrs.put({**attrs, "format": sl.INCOMPLETE_FORMAT})
        return cls(path, group, "r+", attrs=attrs)

    @classmethod
    def open(cls, path: str | os.PathLike | RemotePath, mode: Literal["r", "r+"] = "r") -> LatentStore:
        """Open and validate a store (``mode`` ``"r"`` or ``"r+"``).

        Raises:
            StoreFormatError: Not a lincae store, another format version, or malformed content.
        """
        if mode not in ("r", "r+"):
            raise ValueError(f"mode: expected 'r' or 'r+', got {mode!r}")
        path = as_location(path)
        return cls(path, open_group(path, mode), mode)

    # -------------------------------------------------------------------------- reading
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

    def iter_blocks(self, key_or_index: str | int, block_frames: int | None = None) -> Iterator[FrameBlock]:
        """Stream a track as :class:`FrameBlock` s ``(start, latents[n, C, D])`` cut at chunk
        boundaries."""
        t = self.track(key_or_index)
        cf = self.chunk_frames
        bf = max(cf, (block_frames or 16 * cf) // cf * cf)
        pos = t.offset
        while pos < t.offset + t.frames:
            end = min((pos // bf + 1) * bf, t.offset + t.frames)
            yield FrameBlock(pos - t.offset, self._latents.read(pos, end))
            pos = end

    def is_complete(self) -> bool:
        """True when the store is planned and no row is still planned (all done or failed)."""
        return self.layout is not None and not (self.table()["status"] == sl.STATUS_PLANNED).any()

    def ledger(self) -> list[dict[str, Any]]:
        """Failure records still current: failed rows (latest reason) and unplanned inputs."""
        return read_ledger(self.path / "ledger", self.table()["status"])

    def describe(self) -> dict[str, Any]:
        """Summary for ``lincae info STORE`` (JSON-ready)."""
        return describe_store(self)

    def compatible_with(self, other: LatentStore, force: bool = False) -> None:
        """Refuse to combine with ``other`` unless format, geometry, channels and model agree.

        Only a model mismatch (id or config) can be forced; a geometry, channel or format
        mismatch makes latent arithmetic meaningless and is always refused.

        Raises:
            StoreMismatchError: Naming both stores and the differing field.
        """
        sl.check_compatible(self._attrs, other._attrs, f"{self.path} and {other.path}", force)


StoreLike = LatentStore | str | os.PathLike | RemotePath
"""An open store or the path of one (what :func:`open_store` takes)."""


def open_store(store: StoreLike, mode: Literal["r", "r+"] = "r") -> LatentStore:
    """``store`` itself if it is open already, else the store at that path opened in ``mode``."""
    return store if isinstance(store, LatentStore) else LatentStore.open(store, mode)
