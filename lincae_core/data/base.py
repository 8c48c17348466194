"""What both latent datasets share: epochs, the exact split of an epoch's items over DDP ranks
and DataLoader workers, mid-epoch resume, whole batches, and ``collate``.

An epoch has ``dataset.length`` items, numbered ``0 … N-1``; item ``i`` is a function of
``(seed, epoch, i)`` alone (:func:`item_rng`). The ``S = world_size × num_workers`` readers take
the items round-robin: reader ``s = rank × num_workers + worker`` yields items ``s, s + S, …`` in
order, so every item appears exactly once per epoch whatever ``S`` (ranks may differ by one item).
A reader's state is how many of its items it yielded; ``load_state_dict`` skips them (under
torchdata's ``StatefulDataLoader`` each worker saves and restores its own). A complete iteration
moves to the next epoch, so ``persistent_workers=True`` works without ``set_epoch``. With
``batch_size=B`` a reader yields its items in runs of ``B`` as whole batches (what a DataLoader
with ``batch_size=B`` would group), made straight into one memory block.

Speed (docs/loading.md, "Speed"): items are made :data:`ITEMS_AT_ONCE` at a time (one chunk-slice
pass, one float16 → float32 conversion and one mixing pass for all of them); the tensors of a
batch are views of one block (:func:`tensor_block`), so a DataLoader worker hands a batch over in
one shared-memory segment rather than one a field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lincae_core.errors import ConfigError

__all__ = ["ITEMS_AT_ONCE", "EpochDataset", "collate", "item_rng", "reader_slot", "tensor_block"]


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


Specs = dict[str, tuple[tuple[int, ...], torch.dtype]]

#: Items an iteration makes together (:meth:`EpochDataset.items`; each is still yielded alone, and
#: a resume point counts the items yielded): per-call costs of the reads and the mixing are shared.
ITEMS_AT_ONCE = 16


class EpochDataset(IterableDataset):
    """Epochs of ``self.length`` items split over ranks × workers, resumable (see the module);
    with ``batch_size``, yielded as whole batches.

    A subclass says which tensors its items hold (:meth:`_tensor_specs`) and fills them for a
    list of items at once (:meth:`_fill`), returning its other fields (numbers in
    ``_number_fields``, keys, metadata) as one list each; :meth:`item` and :meth:`batch` are
    built on that.
    """

    #: The fields ``_fill`` returns that are numbers, with the dtype of their batch tensor.
    _number_fields: dict[str, torch.dtype] = {}

    def __init__(
        self, seed: int, rank: int | None, world_size: int | None, batch_size: int | None = None
    ) -> None:
        self.seed, self.epoch = int(seed), 0
        self.rank, self.world_size = rank, world_size
        if batch_size is not None and int(batch_size) < 1:
            raise ConfigError(f"batch_size: expected a positive number of items, got {batch_size}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.length = 0  # items an epoch (set by the subclass)
        self._yielded = 0  # items this reader yielded in this epoch (its resume point)

    def __len__(self) -> int:
        """Items an epoch; with ``batch_size``, batches an epoch (``ceil(length / batch_size)``,
        what ``len(DataLoader(…, batch_size=B))`` gives for items)."""
        return self.length if self.batch_size is None else -(-self.length // self.batch_size)

    def _tensor_specs(self, n: int) -> Specs:
        """The tensor fields of ``n`` items: name → ``(shape, dtype)``, ``n`` leading."""
        raise NotImplementedError

    def _fill(self, indices: Sequence[int], out: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        """Fill row ``r`` of each array in ``out`` (the tensor fields as numpy arrays; half
        floats as float32, rounded afterwards) with item ``indices[r]`` of the current epoch;
        return the other fields, one list (one value an item) each."""
        raise NotImplementedError

    def _check(self, indices: Sequence[int]) -> None:
        for index in indices:
            if not 0 <= index < self.length:
                raise IndexError(f"item {index} outside the epoch's {self.length}")

    def item(self, index: int) -> dict[str, Any]:
        """Item ``index`` of the current epoch (deterministic in ``(seed, epoch, index)``)."""
        return self.items([index])[0]

    def items(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Items ``indices`` of the current epoch, made together (one read and one mixing pass
        for all of them) and returned one dict each (their tensors are views of shared arrays)."""
        indices = [int(i) for i in indices]
        self._check(indices)
        if not indices:
            return []
        specs = self._tensor_specs(len(indices))
        arrays = {k: np.empty(shape, _fill_dtype(dt)) for k, (shape, dt) in specs.items()}
        rest = self._fill(indices, arrays)
        rows = {}
        for k, (_, dt) in specs.items():
            t = torch.from_numpy(arrays[k])
            rows[k] = (t if t.dtype == dt else t.to(dt)).unbind(0)
        return [
            {
                **{k: v[r] for k, v in rows.items()},
                **{k: v[r] for k, v in rest.items()},
                "epoch": self.epoch,
                "index": i,
            }
            for r, i in enumerate(indices)
        ]

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Items ``indices`` of the current epoch as one batch: the fields of :func:`collate`'s
        batch of the same items, with the numbers as tensors too (``int64``/``float64``; what a
        DataLoader with ``batch_size=None`` would make of numpy arrays), every tensor a view of one
        memory block (:func:`tensor_block`: shared memory in a DataLoader worker)."""
        indices = [int(i) for i in indices]
        self._check(indices)
        if not indices:
            raise ValueError("batch: expected at least one item index")
        n = len(indices)
        specs = self._tensor_specs(n)
        numbers = {**self._number_fields, "epoch": torch.int64, "index": torch.int64}
        every = {**specs, **{k: ((n,), dt) for k, dt in numbers.items()}}
        block = dict(zip(every, tensor_block(list(every.values())), strict=True))
        half = {k for k, (_, dt) in specs.items() if _NUMPY[dt] is None}
        arrays = {
            k: np.empty(shape, np.float32) if k in half else block[k].numpy()
            for k, (shape, _) in specs.items()
        }
        rest = self._fill(indices, arrays)
        for k in half:  # computed in float32, rounded once
            block[k].copy_(torch.from_numpy(arrays[k]))
        rest["epoch"], rest["index"] = [self.epoch] * n, indices
        for k in numbers:
            block[k].numpy()[:] = rest.pop(k)
        return {**block, **rest}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration yields (call before each epoch, as with
        ``DistributedSampler``); resets the resume point. A complete iteration also moves the
        dataset to the next epoch by itself."""
        if int(epoch) != self.epoch:
            self.epoch, self._yielded = int(epoch), 0

    def reader_indices(self) -> range:
        """The item indices this reader (rank × worker) yields this epoch, in order."""
        slot, readers = reader_slot(self.rank, self.world_size)
        return range(slot, self.length, readers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        mine = self.reader_indices()
        skip = self._yielded
        if self.batch_size is None:  # items, made ITEMS_AT_ONCE at a time, yielded one by one
            for at in range(skip, len(mine), ITEMS_AT_ONCE):
                for n, item in enumerate(self.items(mine[at : at + ITEMS_AT_ONCE]), start=at + 1):
                    self._yielded = n
                    yield item
        else:  # this reader's items in runs of batch_size (as a DataLoader batches a worker's items)
            for at in range(skip, len(mine), self.batch_size):
                run = mine[at : at + self.batch_size]
                batch = self.batch(run)
                self._yielded = at + len(run)
                yield batch
        # the epoch is complete: the next iteration is the next epoch (so persistent DataLoader
        # workers, whose copies set_epoch in the main process never reaches, move on too)
        self.epoch, self._yielded = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        """``{"seed", "epoch", "yielded"}``: where this reader stands in its epoch (items)."""
        return {"seed": self.seed, "epoch": self.epoch, "yielded": self._yielded}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration continues ``state``'s epoch after its ``yielded`` items."""
        self.seed, self.epoch, self._yielded = int(state["seed"]), int(state["epoch"]), int(state["yielded"])


#: numpy's dtype of a tensor field (``None``: half floats, which numpy lacks or computes slowly).
_NUMPY: dict[torch.dtype, Any] = {
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.int64: np.int64,
    torch.bool: np.bool_,
    torch.float16: None,
    torch.bfloat16: None,
}


def _fill_dtype(dtype: torch.dtype) -> Any:
    """The numpy dtype ``_fill`` computes a field of ``dtype`` in (float32 for half floats)."""
    got = _NUMPY[dtype]
    return np.float32 if got is None else got


def tensor_block(
    specs: Sequence[tuple[Sequence[int], torch.dtype]], shared: bool | None = None
) -> list[torch.Tensor]:
    """Empty tensors of the given ``(shape, dtype)`` that share one memory block (each view
    aligned to 64 bytes), in shared memory when ``shared`` (default: when called in a DataLoader
    worker).

    A worker hands a batch to the main process by pickling it: each tensor storage costs a
    shared-memory segment whose file descriptor the main process fetches from the worker over a
    socket (torch's default ``file_descriptor`` strategy), a round trip each; views of one block
    make that one round trip a batch, whatever the number of fields (and in shared memory from
    the start, the batch is not copied again when it is sent).
    """
    offsets, end = [], 0
    for shape, dtype in specs:
        end = -(-end // 64) * 64
        offsets.append(end)
        end += _itemsize(dtype) * math.prod(shape)
    n = max(end, 1)
    if shared is None:
        shared = get_worker_info() is not None
    storage = torch.UntypedStorage._new_shared(n) if shared else torch.UntypedStorage(n)
    return [
        torch.empty(0, dtype=dtype).set_(storage, off // _itemsize(dtype), tuple(shape), _strides(shape))
        for (shape, dtype), off in zip(specs, offsets, strict=True)
    ]


def _strides(shape: Sequence[int]) -> tuple[int, ...]:
    """The strides of a contiguous tensor of ``shape``, in elements."""
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(out))


_ITEMSIZE: dict[torch.dtype, int] = {}


def _itemsize(dtype: torch.dtype) -> int:
    got = _ITEMSIZE.get(dtype)
    if got is None:
        got = _ITEMSIZE[dtype] = torch.empty((), dtype=dtype).element_size()
    return got


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch items: tensors stacked (views of one memory block, in shared memory in a DataLoader
    worker: see :func:`tensor_block`), numbers as numpy arrays (as stable-audio-tools' collation),
    anything else (keys, metadata) as lists.

    (``torch``'s default collate fails on per-track metadata whose fields differ between tracks,
    and gives each field its own shared-memory segment.)
    """
    out: dict[str, Any] = {}
    stacked = []
    for name in items[0]:
        values = [it[name] for it in items]
        if isinstance(values[0], torch.Tensor):
            stacked.append(name)
            out[name] = values
        elif isinstance(values[0], (bool, int, float, np.number)):
            out[name] = np.asarray(values)
        else:
            out[name] = values
    specs = [((len(items), *out[k][0].shape), out[k][0].dtype) for k in stacked]
    for name, dest in zip(stacked, tensor_block(specs), strict=True):
        out[name] = torch.stack(out[name], out=dest)
    return out
