"""The latent store (Zarr v3 group, format ``lincae-latents``): the only package that imports zarr.

Rooms: :mod:`~lincae_core.store.layout` (format constants, validation, chunk layout: pure),
:mod:`~lincae_core.store.group` (opening the group),
:mod:`~lincae_core.store.chunk_files` (the plain layout's chunk files, their optional CRC32C),
:mod:`~lincae_core.store.array` (frame-range access to the latent array),
:mod:`~lincae_core.store.damage` (missing, truncated and corrupt chunks; ``lincae verify``),
:mod:`~lincae_core.store.table` (the track table on disk),
:mod:`~lincae_core.store.ledger` (the append-only failure ledger),
:mod:`~lincae_core.store.lineage` (lineage records),
:mod:`~lincae_core.store.writing` (planning, latent writes, row status),
:mod:`~lincae_core.store.sources_origin` (a mix's sources, ``Enc(0)``),
:mod:`~lincae_core.store.loudness_stats` (per-track loudness, latent statistics),
:mod:`~lincae_core.store.latent_store` (``LatentStore``: create, open, read; ``open_store``) and
:mod:`~lincae_core.store.local_view` (a local store read without zarr: ``ls``, ``info``).
Outputs are built beside their final path and published with :mod:`lincae_core.publish`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lincae_core.config.geometry import Geometry
    from lincae_core.store.array import LatentArray
    from lincae_core.store.latent_store import LatentStore, StoreLike, open_store
    from lincae_core.store.layout import TrackInfo
    from lincae_core.store.lineage import lineage_entry

# Re-exported lazily: importing a zarr-free module of the package (layout, local_view) imports no
# zarr, so that `lincae ls` and `lincae info` start at once (docs/store-format.md, "Start-up").
_EXPORTS = {
    "Geometry": "lincae_core.config.geometry",
    "LatentArray": "lincae_core.store.array",
    "LatentStore": "lincae_core.store.latent_store",
    "StoreLike": "lincae_core.store.latent_store",
    "open_store": "lincae_core.store.latent_store",
    "TrackInfo": "lincae_core.store.layout",
    "lineage_entry": "lincae_core.store.lineage",
}

__all__ = ["Geometry", "LatentArray", "LatentStore", "StoreLike", "TrackInfo", "lineage_entry", "open_store"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lincae_core.store' has no attribute {name!r}")
