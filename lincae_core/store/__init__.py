"""The latent store (Zarr v3 group, format ``lincae-latents``): the only package that imports zarr.

Rooms: :mod:`~lincae_core.store.layout` (format constants, validation, chunk layout: pure),
:mod:`~lincae_core.store.ledger` (the append-only failure ledger),
:mod:`~lincae_core.store.lineage` (lineage records) and
:mod:`~lincae_core.store.latent_store` (``LatentStore``, ``LatentArray``). Outputs are built beside
their final path and published with :mod:`lincae_core.publish`.
"""

from __future__ import annotations

from lincae_core.store.latent_store import LatentArray, LatentStore
from lincae_core.store.layout import Geometry, TrackInfo
from lincae_core.store.lineage import lineage_entry

__all__ = ["Geometry", "LatentArray", "LatentStore", "TrackInfo", "lineage_entry"]
