"""The checked opening of a store's Zarr group: what zarr opens for a local folder or a URL, the
group itself (or one line saying why it is not a lincae store) and its member arrays."""

from __future__ import annotations

from typing import Any, Literal

import zarr

import lincae_core.store.layout as sl
from lincae_core.errors import LincaeError, StoreFormatError
from lincae_core.location import Location, RemotePath, storage_errors, storage_options

__all__ = ["member", "open_group", "zarr_store"]


def zarr_store(path: Location, mode: Literal["r", "r+", "w"]) -> Any:
    """What zarr opens for ``path``: the path itself (a local folder) or an ``FsspecStore`` on the
    URL with lincae's storage options (:func:`lincae_core.location.storage_options`)."""
    if not isinstance(path, RemotePath):
        return str(path)
    from zarr.storage import FsspecStore

    with storage_errors(path, "open"):
        return FsspecStore.from_url(
            str(path), storage_options=storage_options(path.protocol), read_only=mode == "r"
        )


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
