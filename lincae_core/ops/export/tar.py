"""Tar members and ``.npy`` files of the shards, written directly (deterministic, fast).

The members are those of ``webdataset.TarWriter`` with fixed attributes (mtime 0, mode 0444,
uid/gid 0, user/group ``bigdata``, PAX format); a shard is written as ``<name>.partial`` and
renamed when complete (:class:`ShardFile`).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lincae_core.location import RemotePath, is_remote, storage_errors
from lincae_core.publish import publish_file

__all__ = ["TAR_BLOCK", "ShardFile", "npy_header", "tar_header"]

TAR_BLOCK, TAR_RECORD = 512, 20 * 512
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


def npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """The ``.npy`` header ``np.save`` writes for a C-ordered array of ``dtype`` and ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


class ShardFile:
    """One shard written as ``<name>.partial`` and renamed when complete; a shard at a URL is
    written to a local temporary file and uploaded when complete (one request)."""

    def __init__(self, name: str) -> None:
        self.name, self.size = name, 0
        self._remote = is_remote(name)
        if self._remote:
            fd, self._tmp = tempfile.mkstemp(prefix="lincae-shard-", suffix=".tar")
            os.close(fd)
        else:
            self._tmp = f"{name}.partial"
        self._fh: BinaryIO = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish/abort

    def write(self, parts: list[bytes | memoryview]) -> None:
        data = b"".join(parts)
        try:
            self._fh.write(data)
        except OSError as exc:  # a write error (disk full) names no file: name the shard
            raise OSError(exc.errno, exc.strerror, self.name) from exc
        self.size += len(data)

    def finish(self) -> None:
        end = 2 * TAR_BLOCK  # two zero blocks, then zeros up to a whole record (as tarfile)
        end += -(self.size + end) % TAR_RECORD
        self._fh.write(bytes(end))
        self._fh.close()
        if self._remote:
            try:
                url = RemotePath(self.name)
                with storage_errors(url, "upload the shard"):
                    url.fs.put_file(self._tmp, url.path)
            finally:
                Path(self._tmp).unlink(missing_ok=True)
        else:
            publish_file(self._tmp, self.name)

    def abort(self) -> None:
        self._fh.close()
        Path(self._tmp).unlink(missing_ok=True)
