"""The checked opening of a store's Zarr group: what zarr opens for a local folder or a URL, the
group itself (or one line saying why it is not a lincae store) and its member arrays.

A local store opened for writing is *pinned*: zarr gets the store's directory through a descriptor
opened with it (``/proc/self/fd/N`` on Linux), not through its path. If another process replaces the
store at that path meanwhile (``--overwrite`` renames the old one aside, then deletes it), every
later write of this process, zarr's or the direct chunk path's, lands in the old directory or fails,
and never in the new store, even in the window between a writer-token check
(:meth:`~lincae_core.store.base.StoreBase.check_writer`) and the write it guards.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any, Literal

import zarr

import lincae_core.store.layout as sl
from lincae_core.errors import LincaeError, StoreFormatError
from lincae_core.location import Location, RemotePath, storage_errors, storage_options

__all__ = ["member", "open_group", "shown_path", "zarr_store"]

_PROC_FD = "/proc/self/fd"
_PINNED: dict[str, str] = {}  # "/proc/self/fd/N" -> the store's path, while N is open


def zarr_store(path: Location, mode: Literal["r", "r+", "w"]) -> Any:
    """What zarr opens for ``path``: the path itself (a local folder) or an ``FsspecStore`` on the
    URL with lincae's storage options (:func:`lincae_core.location.storage_options`)."""
    if not isinstance(path, RemotePath):
        return _pinned(path) if mode == "r+" else str(path)
    from zarr.storage import FsspecStore

    with storage_errors(path, "open"):
        return FsspecStore.from_url(
            str(path), storage_options=storage_options(path.protocol), read_only=mode == "r"
        )


def _pinned(path: Path) -> Any:
    """A ``LocalStore`` on the directory ``path`` names now, through a descriptor closed with the
    store object (see the module docstring); the path itself where there is no ``/proc/self/fd``."""
    if not os.path.isdir(_PROC_FD):
        return str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # missing, or not a directory: zarr's own error (open_group words it)
        return str(path)
    from zarr.storage import LocalStore

    root = f"{_PROC_FD}/{fd}"
    store = LocalStore(root)
    _PINNED[root] = str(path)
    weakref.finalize(store, _unpin, root, fd)
    return store


def _unpin(root: str, fd: int) -> None:
    _PINNED.pop(root, None)
    os.close(fd)


def shown_path(name: str) -> str:
    """``name`` with a pinned store's ``/proc/self/fd/N`` prefix turned back into the store's path
    (for messages)."""
    if name.startswith(_PROC_FD + "/"):
        root = "/".join(name.split("/", 5)[:5])
        if root in _PINNED:
            return _PINNED[root] + name[len(root) :]
    return name


def open_group(path: Location, mode: Literal["r", "r+"]) -> Any:
    """Open the Zarr group of a store, or fail with a one-line ``StoreFormatError``."""
    if not isinstance(path, RemotePath) and not path.exists():
        raise StoreFormatError(f"{path} does not exist (expected a lincae latent store)")
    try:  # Zarr v3 only: no probing for v2 metadata objects
        return zarr.open_group(zarr_store(path, mode), mode=mode, zarr_format=3)
    except LincaeError:
        raise
    except Exception as exc:
        if isinstance(path, RemotePath) and not (path / "zarr.json").is_file():  # asked only now
            if path.is_dir():
                raise StoreFormatError(
                    f"{path} holds objects but no store root ({path / 'zarr.json'}): a command that "
                    "writes it was stopped (run it again), or it is not a lincae store"
                ) from None
            raise StoreFormatError(
                path.missing(f"expected a lincae latent store: no {path / 'zarr.json'}")
            ) from None
        if isinstance(path, RemotePath):
            with storage_errors(path, "open"):  # the network or the credentials: one line
                raise
        raise StoreFormatError(
            f"{path} is not a lincae latent store (expected a Zarr v3 group with attribute "
            f"format='{sl.FORMAT_NAME}'; {type(exc).__name__})"
        ) from exc


def member(group: Any, name: str, path: Location) -> Any:
    """The array ``name`` of ``group``, or a ``StoreFormatError`` naming what is missing."""
    try:
        node = group[name]
    except Exception as exc:
        raise StoreFormatError(f"{path}: missing array '{name}'") from exc
    if not isinstance(node, zarr.Array):
        raise StoreFormatError(f"{path}: '{name}': expected an array, got a group")
    return node
