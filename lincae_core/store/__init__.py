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
:mod:`~lincae_core.store.loudness_stats` (per-track loudness, latent statistics) and
:mod:`~lincae_core.store.latent_store` (``LatentStore``: create, open, read; ``open_store``).
Outputs are built beside their final path and published with :mod:`lincae_core.publish`.
"""

from __future__ import annotations

from lincae_core.config.geometry import Geometry
from lincae_core.store.array import LatentArray
from lincae_core.store.latent_store import LatentStore, StoreLike, open_store
from lincae_core.store.layout import TrackInfo
from lincae_core.store.lineage import lineage_entry

__all__ = ["Geometry", "LatentArray", "LatentStore", "StoreLike", "TrackInfo", "lineage_entry", "open_store"]
