"""Build an output beside its final path, then rename it into place: the one way outputs appear.

Every artifact lincae writes (a store, a checkpoint file, a training state, a decoded file, an
export shard) is written under a temporary sibling name and renamed onto its final path only
when complete, so a reader never sees a half-written output and a kill leaves the previous one
intact. Temporary names carry the host and process id (``.NAME.KIND-HOST-PID-RAND``) so that a
later run can remove the leftovers of dead processes (:func:`remove_stale_siblings`).

Files get the permissions of an ordinary ``open()`` under the user's umask (``mkstemp`` would
leave them ``0600``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lincae_core.errors import LincaeError, OutputExistsError
from lincae_core.location import Location, RemotePath, as_location

__all__ = [
    "Building",
    "atomic_path",
    "building_dir",
    "check_free",
    "free_name",
    "publish_dir",
    "publish_file",
    "remove_stale_siblings",
    "temp_sibling",
    "write_text_atomic",
]

_umask: int | None = None


def _file_mode() -> int:
    """``0o666`` less the process umask (read once; ``os.umask`` can only be read by setting it)."""
    global _umask
    if _umask is None:
        _umask = os.umask(0o022)
        os.umask(_umask)
    return 0o666 & ~_umask


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())


def temp_sibling(out: Path, kind: str, suffix: str = "") -> Path:
    """A fresh temporary path beside ``out``: ``.NAME.KIND-HOST-PID-RAND[suffix]``."""
    out = Path(out)
    return out.parent / f".{out.name}.{kind}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_siblings(out: Path) -> list[Path]:
    """Delete temporaries of ``out`` left by dead processes of this host; return what was removed."""
    out, host, removed = Path(out), _host(), []
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z]+-{re.escape(host)}-(\d+)-[0-9a-f]+(\..*)?")
    for p in out.parent.glob(f".{glob_escape(out.name)}.*-{host}-*-*"):
        m = pattern.fullmatch(p.name)
        if m and not _alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    return removed


def glob_escape(name: str) -> str:
    """Escape glob metacharacters of a file name."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def publish_dir(tmp: Path, out: Path, replace: bool) -> bool:
    """Rename the finished directory ``tmp`` onto ``out``.

    Args:
        tmp: The complete output, a sibling of ``out`` (see :func:`temp_sibling`).
        out: The final path.
        replace: Move an existing ``out`` (directory, file or link) aside first and delete it
            once ``tmp`` is in place. If ``tmp`` cannot be renamed into place, the old output is
            renamed back: nothing is lost.

    Returns:
        True if ``tmp`` was published; False if ``out`` exists and ``replace`` is off (another
        process published first). ``tmp`` is left for the caller to remove in that case.
    """
    tmp, out = Path(tmp), Path(out)
    old = None
    if replace and _exists(out):
        old = temp_sibling(out, "old")
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            if _exists(out):  # another process published meanwhile: the old output is replaced
                _remove(old)
                return False
            os.rename(old, out)  # nothing replaced it: put it back
            raise
        if not _exists(out):
            raise
        return False
    if old is not None:
        _remove(old)
    return True


def _exists(p: Location) -> bool:
    return p.exists() or p.is_symlink()


def _remote_state(out: RemotePath) -> str:
    from lincae_core.remote_publish import remote_state

    return remote_state(out)


def check_free(out: str | os.PathLike | RemotePath, overwrite: bool, what: str = "it") -> Location:
    """Return ``out`` as a location; raise :class:`OutputExistsError` if it is taken and not
    ``overwrite``. In object storage, what a killed lincae command left (an incomplete store's
    root) does not count as taken: the command that made it replaces it."""
    out = as_location(out)
    if isinstance(out, RemotePath):
        if not overwrite and _remote_state(out) == "complete":
            raise OutputExistsError(out, what)
        return out
    if _exists(out) and not overwrite:
        raise OutputExistsError(out, what)
    return out


def free_name(parent: str | os.PathLike | RemotePath, base: str, suffix: str = "") -> Location:
    """The first free path of ``parent/base{suffix}``, ``parent/base-2{suffix}``, ``-3``, ...

    The one rule for outputs written without ``-o`` (``a+b.mix.zarr``, ``a+b.mix-2.zarr``).
    """
    parent = as_location(parent)
    for n in range(1, 10_000):
        cand = parent / f"{base}{'' if n == 1 else f'-{n}'}{suffix}"
        if not _exists(cand):
            return cand
    raise LincaeError(f"{parent}: no free output name for {base}{suffix}; give -o/--out")


@dataclass
class Building:
    """A directory being built by :func:`building_dir`: write into ``tmp``.

    ``published`` is set once ``tmp`` is renamed onto ``out``; it stays False when another
    process published ``out`` first and ``exist_ok`` allowed that. ``direct``: ``tmp`` is
    ``out`` itself, a URL written in place (the caller creates its store with ``commit=False``
    and commits it last).
    """

    tmp: Location
    out: Location
    published: bool = False
    direct: bool = False


@contextlib.contextmanager
def building_dir(
    out: str | os.PathLike | RemotePath,
    *,
    replace: bool = False,
    kind: str = "tmp",
    exist_ok: bool = False,
    direct: bool = False,
) -> Iterator[Building]:
    """Build a directory beside ``out`` and publish it: the one way a directory output appears.

    Yields a :class:`Building` whose ``tmp`` (a fresh sibling of ``out``, not yet created) the
    caller fills. On success ``tmp`` is renamed onto ``out`` (:func:`publish_dir`, replacing an
    existing ``out`` only with ``replace``); on any error, and when another process published
    first, ``tmp`` is removed. A concurrent publisher is an :class:`OutputExistsError` unless
    ``exist_ok``.

    At a URL (object storage: no rename) the output is built in a local temporary folder and
    uploaded with its root ``zarr.json`` last (:mod:`lincae_core.remote_publish`), or, with
    ``direct`` (outputs too large to stage), written in place by the caller, who commits it last.
    """
    loc = as_location(out)
    if isinstance(loc, RemotePath):
        from lincae_core.remote_publish import building_remote

        with building_remote(loc, replace=replace, exist_ok=exist_ok, direct=direct) as rb:
            yield rb
        return
    tmp = temp_sibling(loc, kind)
    b = Building(tmp, loc)
    try:
        yield b
        b.published = publish_dir(tmp, loc, replace)
        if not b.published and not exist_ok:
            raise LincaeError(f"{loc} appeared while it was being written; nothing replaced")
    finally:
        if _exists(tmp):
            _remove(tmp)


def publish_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give the finished file ``tmp`` the umask's permissions and rename it onto ``path``."""
    os.chmod(tmp, _file_mode())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike | RemotePath, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; publish it on success, remove it on error.

    Args:
        path: The final file. At a URL the temporary file is local and is uploaded in one
            request (one PUT, or a multipart upload that appears whole when completed).
        suffix: Suffix of the temporary name (writers that infer the format from it).
    """
    loc = as_location(path)
    if isinstance(loc, RemotePath):
        from lincae_core.remote_publish import uploading

        with uploading(loc, suffix) as tmp:
            yield tmp
        return
    path = loc
    tmp = temp_sibling(path, "part", suffix)
    try:
        yield tmp
        publish_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike | RemotePath, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (one PUT at a URL)."""
    loc = as_location(path)
    if isinstance(loc, RemotePath):
        loc.write_text(text)
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
