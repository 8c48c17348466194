"""Training on the latents: PyTorch datasets over latent stores (docs/loading.md).

:class:`~lincae_core.data.windows.LatentWindows`: fixed-length windows of one or several stores
(seeded random crops, or every window once in order). :class:`~lincae_core.data.mixtures.LatentMixtures`:
mixtures made on the fly from stores of stems paired by key, with their targets. Both are
``IterableDataset``\\ s whose items are a function of ``(seed, epoch, index)`` alone, split exactly
once per epoch over DataLoader workers and DDP ranks (:mod:`~lincae_core.data.base`), resumable
mid-epoch (``state_dict``/``load_state_dict``), yielding items (batch them with ``collate``) or
whole batches (``batch_size``), in float32 or half floats (``dtype``). Rooms: ``base`` (epochs,
sharding, resume, whole batches, ``collate``), ``sources`` (opened stores, chunk-cached reads,
Enc(0)), ``windows``, ``mixtures``.
"""

from __future__ import annotations

from lincae_core.data.base import collate
from lincae_core.data.mixtures import LatentMixtures
from lincae_core.data.windows import LatentWindows

__all__ = ["LatentMixtures", "LatentWindows", "collate"]
