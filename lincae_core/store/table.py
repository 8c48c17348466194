"""The track table on disk: one 1-D Zarr array a column under ``tracks/`` (``key`` and
:data:`~lincae_core.store.layout.TABLE_COLUMNS`), written whole and read back checked."""

from __future__ import annotations

from typing import Any

import numpy as np

import lincae_core.store.layout as sl
from lincae_core.config.geometry import Geometry
from lincae_core.errors import StoreFormatError
from lincae_core.location import Location
from lincae_core.store.group import member
from lincae_core.store.layout import MAX_TABLE_CHUNK, TABLE_CHUNK

__all__ = ["MAX_TABLE_CHUNK", "load_table", "write_table"]


def write_table(group: Any, table: dict[str, np.ndarray], status_chunk: int) -> None:
    """Write every column of ``table`` (the status column in chunks of ``status_chunk`` rows)."""
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
            compressors=None,  # keys too: a few bytes each, read without numcodecs (store.local_view)
            **({} if name == "key" else {"fill_value": 0}),
        )
        if n:
            arr[:] = table[name]


def load_table(group: Any, path: Location, total_frames: int, geometry: Geometry) -> dict[str, np.ndarray]:
    """Read every column of the table and check it against the latent array it indexes."""
    table = {}
    for name in ("key", *sl.TABLE_COLUMNS):
        arr = member(group, f"tracks/{name}", path)
        sl.validate_column_chunks(name, tuple(arr.chunks), str(path))
        try:
            table[name] = arr[:]
        except (ValueError, RuntimeError) as exc:  # a truncated or damaged chunk: one line
            raise StoreFormatError(
                f"{path}: tracks/{name}: unreadable ({type(exc).__name__}: {exc})"
            ) from exc
    sl.validate_table(table, total_frames, geometry, str(path))
    return table
