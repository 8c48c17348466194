"""What both latent datasets share: epochs, the exact split of an epoch's items over DDP ranks
and DataLoader workers, mid-epoch resume, and ``collate``.

An epoch has ``len(dataset)`` items, numbered ``0 … N-1``; item ``i`` is a function of
``(seed, epoch, i)`` alone (:func:`item_rng`). The ``S = world_size × num_workers`` readers take
the items round-robin: reader ``s = rank × num_workers + worker`` yields items ``s, s + S, …`` in
order, so every item appears exactly once per epoch whatever ``S`` (ranks may differ by one item).
A reader's state is how many of its items it yielded; ``load_state_dict`` skips them (under
torchdata's ``StatefulDataLoader`` each worker saves and restores its own). A complete iteration
moves to the next epoch, so ``persistent_workers=True`` works without ``set_epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

__all__ = ["EpochDataset", "collate", "item_rng", "reader_slot"]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``epoch`` (independent of who reads it)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


def reader_slot(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(slot, readers)`` of the calling process: ``rank × num_workers + worker`` of
    ``world_size × num_workers``. ``rank``/``world_size`` default to ``torch.distributed``'s when it
    is initialised, else ``0``/``1``; the worker is the DataLoader's (``0`` of ``1`` outside one)."""
    if rank is None or world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    rank, world_size = int(rank or 0), int(world_size or 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    info = get_worker_info()
    worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
    return rank * workers + worker, world_size * workers


class EpochDataset(IterableDataset):
    """Epochs of ``len(self)`` items split over ranks × workers, resumable (see the module)."""

    def __init__(self, seed: int, rank: int | None, world_size: int | None) -> None:
        self.seed, self.epoch = int(seed), 0
        self.rank, self.world_size = rank, world_size
        self._yielded = 0  # items this reader yielded in this epoch (its resume point)

    def __len__(self) -> int:
        raise NotImplementedError

    def item(self, index: int) -> dict[str, Any]:
        """Item ``index`` of the current epoch (deterministic in ``(seed, epoch, index)``)."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration yields (call before each epoch, as with
        ``DistributedSampler``); resets the resume point. A complete iteration also moves the
        dataset to the next epoch by itself."""
        if int(epoch) != self.epoch:
            self.epoch, self._yielded = int(epoch), 0

    def reader_indices(self) -> range:
        """The item indices this reader (rank × worker) yields this epoch, in order."""
        slot, readers = reader_slot(self.rank, self.world_size)
        return range(slot, len(self), readers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        mine = self.reader_indices()
        skip = self._yielded
        for n, i in enumerate(mine[skip:], start=skip):
            item = self.item(i)
            self._yielded = n + 1
            yield item
        # the epoch is complete: the next iteration is the next epoch (so persistent DataLoader
        # workers, whose copies set_epoch in the main process never reaches, move on too)
        self.epoch, self._yielded = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        """``{"seed", "epoch", "yielded"}``: where this reader stands in its epoch."""
        return {"seed": self.seed, "epoch": self.epoch, "yielded": self._yielded}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration continues ``state``'s epoch after its ``yielded`` items."""
        self.seed, self.epoch, self._yielded = int(state["seed"]), int(state["epoch"]), int(state["yielded"])


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch items: tensors stacked, numbers as numpy arrays (as stable-audio-tools' collation;
    from DataLoader workers a numpy array travels inline where each tensor costs a shared-memory
    segment, ~1.5x the items per second here), anything else (keys, metadata) as lists.

    (``torch``'s default collate fails on per-track metadata whose fields differ between tracks.)
    """
    out: dict[str, Any] = {}
    for name in items[0]:
        values = [it[name] for it in items]
        if isinstance(values[0], torch.Tensor):
            out[name] = torch.stack(values)
        elif isinstance(values[0], (bool, int, float, np.number)):
            out[name] = np.asarray(values)
        else:
            out[name] = values
    return out
