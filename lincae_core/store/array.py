"""Frame-range access to a store's ``latents`` array ``[F, C, D]`` (what workers open; the group
is opened by :mod:`~lincae_core.store.group`).

Reads and writes of the latent array take a direct path when the array has the plain layout
lincae writes (Zarr v3, one ``bytes`` codec, little-endian, no compressor, default chunk keys
with ``.`` or ``/``, on the local file system): a chunk is then a file holding the C-order bytes of a
``[chunk_frames, C, D]`` block, so a frame range is a byte range of a few files. Reading just
those bytes, and writing whole chunk files through a temporary file renamed into place (as zarr's
``LocalStore`` does), skips zarr's per-chunk codec pipeline, which cost ~12x the raw file I/O
here (docs/store-format.md, "Speed"). The files are exactly what zarr itself reads and writes, so
the store stays readable by any Zarr v3 tool; any other layout goes through zarr. A store made
with checksums (:mod:`~lincae_core.store.chunk_files`) has every chunk checked against its CRC32C
on the direct path as on zarr's; a mismatch is damage (:mod:`~lincae_core.store.damage`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

import lincae_core.store.chunk_files as cfs
import lincae_core.store.layout as sl
from lincae_core.errors import LincaeError
from lincae_core.location import Location, RemotePath, as_location, storage_errors
from lincae_core.store.group import member, open_group

__all__ = ["CachedArray", "LatentArray", "chunk_cache_bytes"]


class LatentArray:
    """Frame-range access to a store's ``latents`` array ``[F, C, D]`` (used by workers)."""

    def __init__(self, array: Any, attrs: Mapping[str, Any], path: Location) -> None:
        """Wrap a zarr array after checking its shape, chunks and dtype against ``attrs``."""
        sl.validate_latents(
            tuple(array.shape), tuple(array.shards or array.chunks), array.dtype, attrs, str(path)
        )
        # write_empty_chunks: skip zarr's scan of every chunk for "all fill value" (a full extra
        # pass) and always store written chunks, zeros included.
        self._array, self.path = array.with_config({"write_empty_chunks": True}), path
        self._raw = cfs.raw_chunk_dir(array)
        self._dirs: set[int] = set()  # chunk directories known to exist ('/' keys)
        self._checked: dict[int, tuple[int, int, int]] = {}  # chunk -> (inode, mtime, size) checked
        self._done: Any = None  # the done rows, read at the first damaged chunk

    @classmethod
    def open(cls, path: str | os.PathLike | RemotePath, mode: Literal["r", "r+"] = "r") -> LatentArray:
        """Open the latent array of a store, checking format and shape but not the track table."""
        path = as_location(path)
        group = open_group(path, mode)
        raw = dict(group.attrs)
        if mode == "r+" and raw.get("format") == sl.INCOMPLETE_FORMAT:  # an output being written
            raw["format"] = sl.FORMAT_NAME
        attrs = sl.validate_attrs(raw, str(path))
        return cls(member(group, "latents", path), attrs, path)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(F, C, D)``."""
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype (float16 or float32)."""
        return np.dtype(self._array.dtype)

    @property
    def chunk_key_separator(self) -> str:
        """Separator of the chunk keys: ``"."`` (``c.K.0.0``) or ``"/"`` (``c/K/0/0``)."""
        return str(getattr(self._array.metadata.chunk_key_encoding, "separator", "/"))

    @property
    def checksums(self) -> str | None:
        """``"crc32c"`` when every chunk carries a CRC32C checked on each read, else None."""
        return "crc32c" if cfs.has_checksums(self._array) else None

    @property
    def chunk_frames(self) -> int:
        """Frames per stored object: a chunk, or a Zarr v3 shard of several chunks (the unit of
        writes, of the layout's alignment and of the chunk caches)."""
        return int((self._array.shards or self._array.chunks)[0])

    @property
    def chunks_per_object(self) -> int:
        """Chunks in one stored object: 1, or the chunks of a Zarr v3 shard (a reader fetches one
        chunk of a shard with a range request after reading the shard's index)."""
        return int(self._array.shards[0] // self._array.chunks[0]) if self._array.shards else 1

    def read(self, start: int, stop: int, buffer: np.ndarray | None = None) -> np.ndarray:
        """Read frames ``[start, stop)`` as ``[stop - start, C, D]`` in the storage dtype.

        ``buffer``: a C-contiguous array of this dtype with at least ``stop - start`` frames to
        read into (its leading frames are returned), sparing a fresh allocation (and its page
        faults) per read in streaming loops.
        """
        if self._raw is None:
            return self._zarr_read(start, stop)
        f, c, d = self.shape
        start, stop = max(0, min(start, f)), max(0, min(stop, f))
        out = _out_buffer(buffer, max(stop - start, 0), self)
        cf, frame_bytes = self.chunk_frames, c * d * out.itemsize
        view = out.reshape(-1).view(np.uint8).data  # a memoryview of the bytes
        pos = start
        while pos < stop:
            k = pos // cf
            end = min(stop, (k + 1) * cf)
            part = view[(pos - start) * frame_bytes : (end - start) * frame_bytes]
            try:
                with open(self._chunk_path(k), "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if st.st_size != self._raw.size:
                        self._damaged(k, f"truncated ({st.st_size} of {self._raw.size} bytes)")
                        return self._zarr_read(start, stop)  # no done track there: let zarr read it
                    offset, stat = (pos - k * cf) * frame_bytes, (st.st_ino, st.st_mtime_ns, st.st_size)
                    # a checksum: the whole file read and checked, once a process while unchanged
                    if self._raw.crc and self._checked.get(k) != stat:
                        if not cfs.read_checked(fh, part, offset, self._raw.payload):
                            self._damaged(k, cfs.CHECKSUM_PROBLEM, cfs.CHECKSUM_CAUSE)
                            part[:] = bytes(len(part))  # no done track there: zeros, as if missing
                        else:
                            self._checked[k] = stat
                        got = len(part)
                    else:
                        fh.seek(offset)
                        got = fh.readinto(part)
            except FileNotFoundError:  # a chunk never written holds the fill value, 0 ...
                self._damaged(k, "missing")  # ... unless the layout gave it to done tracks
                part[:] = bytes(len(part))
                got = len(part)
            if got != len(part):
                return self._zarr_read(start, stop)
            pos = end
        return out

    def _zarr_read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` through zarr; a chunk failing its checksum is found object by
        object and stops the read with the damage line (zeros if it holds no done track)."""
        with storage_errors(self.path, "read latents"):
            try:
                return self._array[start:stop]
            except ValueError as exc:
                if not cfs.is_checksum_error(exc):
                    raise
            cf, parts = self.chunk_frames, []
            for k in range(start // cf, (min(stop, self.shape[0]) - 1) // cf + 1):
                a, b = max(start, k * cf), min(stop, (k + 1) * cf, self.shape[0])
                try:
                    parts.append(self._array[a:b])
                except ValueError as exc:
                    if not cfs.is_checksum_error(exc):
                        raise
                    self._damaged(k, cfs.CHECKSUM_PROBLEM, cfs.CHECKSUM_CAUSE)
                    parts.append(np.zeros((b - a, *self.shape[1:]), self.dtype))
            return np.concatenate(parts)

    def checksum_ok(self, k: int) -> bool:
        """Whether stored object ``k`` matches its CRC32C checksums, read whole (``lincae verify``);
        True without checksums and for an object never written."""
        if not self.checksums:
            return True
        if self._raw is not None:
            try:
                with open(self._chunk_path(k), "rb") as fh:
                    size = self._raw.payload
                    return cfs.read_checked(fh, memoryview(bytearray(size)), 0, size)
            except FileNotFoundError:
                return True
        cf = self.chunk_frames
        with storage_errors(self.path, "read latents"):
            try:
                self._array[k * cf : (k + 1) * cf]
            except ValueError as exc:
                if not cfs.is_checksum_error(exc):
                    raise
                return False
        return True

    def gather(self, starts: np.ndarray, stops: np.ndarray, buffer: np.ndarray | None = None) -> np.ndarray:
        """Frame ranges ``[starts[j], stops[j])`` one after another, ``[sum(n), C, D]``: one read
        a range (:meth:`CachedArray.gather` serves them from cached chunks instead).
        ``buffer``: filled instead of a new array when it has room (as :meth:`read`)."""
        out = _out_buffer(buffer, int((np.asarray(stops) - np.asarray(starts)).sum()), self)
        row = 0
        for a, b in zip(np.asarray(starts).tolist(), np.asarray(stops).tolist(), strict=True):
            out[row : row + b - a] = self.read(a, b, out[row : row + b - a])
            row += b - a
        return out

    def write(self, start: int, z: np.ndarray) -> None:
        """Write ``z[n, C, D]`` at frames ``[start, start + n)``."""
        if self._raw is None:
            with storage_errors(self.path, "write latents"):
                try:
                    self._array[start : start + z.shape[0]] = z
                    return
                except ValueError as exc:  # a chunk zarr read to patch failed its checksum:
                    if not cfs.is_checksum_error(exc):  # patch chunk by chunk below (a damage line,
                        raise  # or zeros where no done track is)
        f = self.shape[0]
        stop = start + z.shape[0]
        if start < 0 or stop > f:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside the array's {f} frames")
        z = np.ascontiguousarray(z, dtype=self.dtype.newbyteorder("<"))
        cf = self.chunk_frames
        pos = start
        while pos < stop:
            k = pos // cf
            c0, c1 = k * cf, min((k + 1) * cf, f)  # the chunk's frames inside the array
            end = min(stop, c1)
            if pos == c0 and end == c1:  # the whole chunk: no need to read it
                block = z[pos - start : end - start]
            else:  # part of a chunk: read, patch, write back (what zarr does too)
                block = self.read(c0, c1)
                block[pos - c0 : end - c0] = z[pos - start : end - start]
            self._put_chunk(k, block)
            pos = end

    def _damaged(self, k: int, problem: str, cause: str | None = None) -> None:
        """Raise if chunk ``k`` (missing, truncated or corrupt) holds frames of done tracks
        (:mod:`lincae_core.store.damage`; the done rows are read once, at the first such chunk)."""
        from lincae_core.store import damage

        if self._done is None:
            self._done = damage.done_rows(self.path)
        damage.damaged(self.path, self._done, k, self.chunk_frames, problem, cause)

    def _chunk_path(self, k: int) -> Path:
        """The file of chunk ``k``: ``c.k.0.0`` ('.' keys, one file a chunk) or ``c/k/0/0`` ('/'
        keys, also two directories a chunk)."""
        assert self._raw is not None
        root, sep = self._raw.root, self._raw.separator
        return root / f"c.{k}.0.0" if sep == "." else root / "c" / str(k) / "0" / "0"

    def _put_chunk(self, k: int, block: np.ndarray) -> None:
        """Write chunk ``k`` from ``block[n <= chunk_frames, C, D]`` (zero-padded to a whole chunk,
        as zarr stores edge chunks, its CRC32C after it with checksums) via a temporary file renamed
        into place; through zarr for other layouts."""
        if self._raw is None:
            cf = self.chunk_frames
            with storage_errors(self.path, "write latents"):
                self._array[k * cf : k * cf + block.shape[0]] = block
            return
        path = self._chunk_path(k)
        if self._raw.separator == "/" and k not in self._dirs:  # "/" keys: one mkdir a chunk directory
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(k)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        pad = (self.chunk_frames - block.shape[0]) * block[0].nbytes if block.shape[0] else 0
        try:
            with open(tmp, "wb") as fh:
                fh.write(block.reshape(-1).view(np.uint8).data)
                if pad:
                    fh.write(bytes(pad))
                if self._raw.crc:
                    fh.write(cfs.crc32c(block, pad))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.filename is None:  # a write error (disk full) names no file: name the store
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def resize(self, frames: int) -> None:
        """Set the number of frames (planning only)."""
        self._array.resize((frames, *self.shape[1:]))


def _out_buffer(buffer: np.ndarray | None, frames: int, array: LatentArray | CachedArray) -> np.ndarray:
    """``buffer[:frames]`` when it is a C-contiguous array of ``array``'s dtype and frame shape
    with room for ``frames``; else a new array."""
    _, c, d = array.shape
    if (
        buffer is not None
        and buffer.dtype == array.dtype
        and buffer.flags.c_contiguous
        and buffer.shape[0] >= frames
        and buffer.shape[1:] == (c, d)
    ):
        return buffer[:frames]
    return np.empty((frames, c, d), array.dtype)


def chunk_cache_bytes() -> int:
    """The memory budget of the input chunk caches of one process: ``LINCAE_CHUNK_CACHE_MB``
    (default 1024 MiB, shared by the inputs); 0 disables the caches."""
    try:
        return int(float(os.environ.get("LINCAE_CHUNK_CACHE_MB", "1024")) * 2**20)
    except ValueError:
        raise LincaeError("Expected LINCAE_CHUNK_CACHE_MB to be a number of MiB.") from None


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

    def gather(self, starts: np.ndarray, stops: np.ndarray, buffer: np.ndarray | None = None) -> np.ndarray:
        """Frame ranges ``[starts[j], stops[j])`` one after another, ``[sum(n), C, D]``, sliced
        from the cached chunks (the scattered tracks of a random pairing). The ranges are served
        chunk by chunk, each chunk looked up once a call and let go before the next, so memory
        stays within the cache's budget plus one chunk. ``buffer``: filled instead of a new array
        when it has room (as :meth:`LatentArray.read`). Without a cache budget, one read a range."""
        if self.budget <= 0:
            return self.array.gather(starts, stops, buffer)
        a, b = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
        n = b - a
        out = _out_buffer(buffer, int(n.sum()), self)
        cf = self.chunk_frames
        c0 = a // cf
        rows = (np.cumsum(n) - n).tolist()
        held, chunk = -1, None
        for j in np.argsort(c0, kind="stable").tolist():
            lo, hi, c, r = int(a[j]), int(b[j]), int(c0[j]), rows[j]
            if hi <= lo:
                continue
            if (hi - 1) // cf != c:  # a range across a chunk boundary
                out[r : r + hi - lo] = self.read(lo, hi)
                continue
            if c != held:
                held, chunk = c, self._chunk(c)
            out[r : r + hi - lo] = chunk[lo - c * cf : hi - c * cf]  # type: ignore[index]
        return out

    def read(self, start: int, stop: int, buffer: np.ndarray | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` as ``[n, C, D]`` in the storage dtype (as LatentArray.read;
        ``buffer`` is used by reads that bypass the cache)."""
        cf = self.chunk_frames
        if stop - start >= cf or self.budget <= 0:
            return self.array.read(start, stop, buffer)
        c0, c1 = start // cf, (stop - 1) // cf
        parts = [
            self._chunk(c)[max(start, c * cf) - c * cf : min(stop, (c + 1) * cf) - c * cf]
            for c in range(c0, c1 + 1)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
