"""The latent chunk files of the plain layout, and their optional CRC32C checksums.

The plain layout (Zarr v3, the ``bytes`` codec little-endian, no compressor, default chunk keys
with ``.`` or ``/``, a local directory) stores chunk ``K`` as one file of the C-order bytes of a
``[chunk_frames, C, D]`` block, which :class:`~lincae_core.store.array.LatentArray` reads and
writes directly. A store made with checksums (``encode --checksums``) adds Zarr v3's ``crc32c``
codec after ``bytes``: each chunk file is followed by the 4-byte little-endian CRC32C
(Castagnoli) of its bytes, exactly as zarr writes and checks it, so the direct path stays open
and any Zarr v3 reader verifies the same checksums. With ``--chunks-per-object`` (Zarr sharding)
the ``crc32c`` codec goes inside the shard, one checksum a chunk, beside the checksum zarr
always gives the shard's index; those stores are read through zarr, which checks both.
"""

from __future__ import annotations

import os
from io import BufferedReader
from pathlib import Path
from typing import Any, NamedTuple

import google_crc32c  # a dependency of zarr 3 (its crc32c codec)
import numpy as np

__all__ = [
    "CHECKSUM_CAUSE",
    "CHECKSUM_PROBLEM",
    "CRC_BYTES",
    "ChunkFiles",
    "checksum_codecs",
    "crc32c",
    "has_checksums",
    "is_checksum_error",
    "raw_chunk_dir",
    "read_checked",
]

CRC_BYTES = 4  # the CRC32C after the chunk's bytes
CHECKSUM_PROBLEM = "corrupt: its CRC32C checksum does not match"
CHECKSUM_CAUSE = "a bit flip on disk or in a copy?"


class ChunkFiles(NamedTuple):
    """Where the chunk files of a plain-layout array are, their key separator, the bytes of one
    chunk's block (``payload``) and whether a CRC32C follows them (``crc``)."""

    root: Path
    separator: str
    payload: int
    crc: bool

    @property
    def size(self) -> int:
        """The size of a whole chunk file."""
        return self.payload + (CRC_BYTES if self.crc else 0)


def checksum_codecs(checksums: bool) -> list[Any] | None:
    """The ``compressors`` of a new latent array: Zarr's ``crc32c`` codec, or none."""
    if not checksums:
        return None
    from zarr.codecs import Crc32cCodec

    return [Crc32cCodec()]


def _codec_names(codecs: Any) -> list[str]:
    return [type(c).__name__ for c in codecs]


def has_checksums(array: Any) -> bool:
    """Whether the chunks of a zarr array carry a CRC32C (its codecs, or inside its shards)."""
    codecs = list(array.metadata.codecs)
    if codecs and type(codecs[0]).__name__ == "ShardingCodec":
        codecs = list(codecs[0].codecs)
    return "Crc32cCodec" in _codec_names(codecs)


def crc32c(data: np.ndarray, pad: int = 0) -> bytes:
    """The CRC32C of the bytes of ``data`` followed by ``pad`` zero bytes, little-endian."""
    value = google_crc32c.value(data.reshape(-1).view(np.uint8))
    if pad:
        value = google_crc32c.extend(value, bytes(pad))
    return int(value).to_bytes(CRC_BYTES, "little")


def is_checksum_error(exc: BaseException) -> bool:
    """Whether zarr raised ``exc`` for a chunk (or shard index) whose CRC32C does not match."""
    return isinstance(exc, ValueError) and "checksum" in str(exc).lower()


def read_checked(fh: BufferedReader, part: memoryview, offset: int, payload: int) -> bool:
    """Read ``len(part)`` bytes at ``offset`` of the open chunk file ``fh`` (``payload`` bytes and
    their CRC32C) into ``part``, reading the whole file to check the checksum; False when it does
    not match (``part`` then holds what was read)."""
    if offset == 0 and len(part) == payload:  # the whole chunk: straight into the output
        fh.seek(0)
        got = fh.readinto(part)
        tail = fh.read(CRC_BYTES)
        return got == payload and tail == crc32c(np.frombuffer(part, np.uint8))
    buf = np.empty(payload + CRC_BYTES, np.uint8)
    fh.seek(0)
    got = fh.readinto(buf.data)
    part[:] = buf[offset : offset + len(part)].data
    return got == buf.size and bytes(buf[payload:]) == crc32c(buf[:payload])


def raw_chunk_dir(array: Any) -> ChunkFiles | None:
    """The chunk files of ``array`` when it has the plain layout (see the module docstring), with or
    without the ``crc32c`` codec; None otherwise (zarr's own I/O then)."""
    if os.environ.get("LINCAE_ZARR_IO") == "1":  # force zarr's own I/O (benchmarks, checks)
        return None
    try:
        from zarr.storage import LocalStore

        meta = array.metadata
        codecs = [(type(c).__name__, getattr(getattr(c, "endian", None), "value", None)) for c in meta.codecs]
        crc = codecs == [("BytesCodec", "little"), ("Crc32cCodec", None)]
        plain = (
            meta.zarr_format == 3
            and isinstance(array.store, LocalStore)
            and (codecs == [("BytesCodec", "little")] or crc)
            and not meta.storage_transformers
            and type(meta.chunk_key_encoding).__name__ == "DefaultChunkKeyEncoding"
            and (sep := meta.chunk_key_encoding.separator) in ("/", ".")
            and meta.chunk_key_encoding.encode_chunk_key((7, 0, 0)) == f"c{sep}7{sep}0{sep}0"
            and tuple(meta.chunk_grid.chunk_shape[1:]) == tuple(array.shape[1:])
            and float(meta.fill_value) == 0.0
        )
        payload = int(np.prod(meta.chunk_grid.chunk_shape)) * np.dtype(array.dtype).itemsize
    except Exception:  # another zarr version or layout: zarr's own I/O is always right
        return None
    return ChunkFiles(Path(array.store.root) / array.path, sep, payload, crc) if plain else None
