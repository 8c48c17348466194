"""Frame-range access to a store's ``latents`` array ``[F, C, D]`` (what workers open), and the
checked opening of a store's Zarr group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

import lincae_core.store.layout as sl
from lincae_core.errors import StoreFormatError

__all__ = ["CachedArray", "LatentArray", "member", "open_group"]


def open_group(path: Path, mode: Literal["r", "r+"]) -> Any:
    """Open the Zarr group of a store, or fail with a one-line ``StoreFormatError``."""
    if not path.exists():
        raise StoreFormatError(f"{path} does not exist (expected a lincae latent store)")
    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as exc:
        raise StoreFormatError(
            f"{path} is not a lincae latent store (expected a Zarr v3 group with attribute "
            f"format='{sl.FORMAT_NAME}'; {type(exc).__name__})"
        ) from exc


def member(group: Any, name: str, path: Path) -> Any:
    """The array ``name`` of ``group``, or a ``StoreFormatError`` naming what is missing."""
    try:
        node = group[name]
    except Exception as exc:
        raise StoreFormatError(f"{path}: missing array '{name}'") from exc
    if not isinstance(node, zarr.Array):
        raise StoreFormatError(f"{path}: '{name}': expected an array, got a group")
    return node


class LatentArray:
    """Frame-range access to a store's ``latents`` array ``[F, C, D]`` (used by workers)."""

    def __init__(self, array: Any, attrs: Mapping[str, Any], path: Path) -> None:
        """Wrap a zarr array after checking its shape, chunks and dtype against ``attrs``."""
        c, d = attrs["channels"], attrs["geometry"]["latent_dim"]
        shape, chunks = tuple(array.shape), tuple(array.chunks)
        if len(shape) != 3 or shape[1:] != (c, d) or shape[0] > sl.MAX_FRAMES:
            raise StoreFormatError(f"{path}: latents: expected shape (F, {c}, {d}), got {shape}")
        if chunks[1:] != (c, d) or not 1 <= chunks[0] <= sl.MAX_CHUNK_FRAMES:
            raise StoreFormatError(f"{path}: latents: expected chunks (n, {c}, {d}), got {chunks}")
        if array.dtype != np.dtype(attrs["dtype"]):
            raise StoreFormatError(
                f"{path}: latents: expected dtype {attrs['dtype']} (attribute dtype), "
                f"got {array.dtype}"
            )
        # write_empty_chunks: skip zarr's scan of every chunk for "all fill value" (a full extra
        # pass) and always store written chunks, zeros included.
        self._array, self.path = array.with_config({"write_empty_chunks": True}), path

    @classmethod
    def open(cls, path: str | os.PathLike, mode: Literal["r", "r+"] = "r") -> LatentArray:
        """Open the latent array of a store, checking format and shape but not the track table."""
        path = Path(path)
        group = open_group(path, mode)
        attrs = sl.validate_attrs(dict(group.attrs), str(path))
        return cls(member(group, "latents", path), attrs, path)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(F, C, D)``."""
        return tuple(self._array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype (float16 or float32)."""
        return np.dtype(self._array.dtype)

    @property
    def chunk_frames(self) -> int:
        """Frames per chunk."""
        return int(self._array.chunks[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Read frames ``[start, stop)`` as ``[stop - start, C, D]`` in the storage dtype."""
        return self._array[start:stop]

    def write(self, start: int, z: np.ndarray) -> None:
        """Write ``z[n, C, D]`` at frames ``[start, start + n)``."""
        self._array[start : start + z.shape[0]] = z

    def resize(self, frames: int) -> None:
        """Set the number of frames (planning only)."""
        self._array.resize((frames, *self.shape[1:]))


class CachedArray:
    """A :class:`LatentArray` whose small reads go through an LRU of whole decoded chunks.

    Zarr decodes a whole chunk for any read inside it, so scattered short reads (the tracks of a
    random pairing) decode the same chunks over and over; this keeps up to ``budget_bytes`` of
    decoded chunks. Reads of a chunk or more bypass the cache (they are already efficient).
    Thread-safe (a prefetch thread and the compute thread share it).
    """

    def __init__(self, array: LatentArray, budget_bytes: int) -> None:
        """Wrap ``array``; at most ``budget_bytes`` of chunks are kept (at least one chunk)."""
        import threading
        from collections import OrderedDict

        self.array, self.budget = array, max(0, int(budget_bytes))
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    chunk_frames = property(lambda self: self.array.chunk_frames)

    def _chunk(self, c: int) -> np.ndarray:
        with self._lock:
            got = self._chunks.get(c)
            if got is not None:
                self._chunks.move_to_end(c)
                self.hits += 1
                return got
        cf = self.chunk_frames
        data = self.array.read(c * cf, min((c + 1) * cf, self.shape[0]))
        with self._lock:
            self.misses += 1
            if c not in self._chunks:
                self._chunks[c] = data
                self._bytes += data.nbytes
            while self._bytes > self.budget and len(self._chunks) > 1:
                _, old = self._chunks.popitem(last=False)
                self._bytes -= old.nbytes
        return data

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as ``[n, C, D]`` in the storage dtype (as LatentArray.read)."""
        cf = self.chunk_frames
        if stop - start >= cf or self.budget <= 0:
            return self.array.read(start, stop)
        c0, c1 = start // cf, (stop - 1) // cf
        parts = [self._chunk(c)[max(start, c * cf) - c * cf : min(stop, (c + 1) * cf) - c * cf]
                 for c in range(c0, c1 + 1)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
