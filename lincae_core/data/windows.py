"""``LatentWindows``: fixed-length latent windows of one or several stores, for training and
validation (docs/loading.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lincae_core.data.base import EpochDataset, item_rng
from lincae_core.data.sources import (
    CACHE_BYTES,
    Metadata,
    StoreSource,
    check_same_model,
    frames_of,
    load_metadata,
)
from lincae_core.errors import ConfigError
from lincae_core.store import LatentStore

__all__ = ["SALIENT_RMS", "LatentWindows", "saliency"]

#: Default threshold of ``salient=True``: a window whose RMS distance to ``Enc(0)`` is below it
#: is redrawn. Measured on the default model (docs/loading.md, "Salient crops"): digital silence
#: and near-silent fades sit below it, music windows above it.
SALIENT_RMS = 0.05


def saliency(z: np.ndarray, origin: np.ndarray, mask: np.ndarray) -> float:
    """RMS distance of a window's real frames ``z[mask]`` to ``Enc(0)`` (0 for silence)."""
    real = z[mask]
    return float(np.sqrt(np.mean(np.square(real - origin)))) if real.size else 0.0


class LatentWindows(EpochDataset):
    """Windows of ``window`` latent frames (on the frame grid) from one or several stores.

    ``random_crop=True`` (training): an epoch has ``length`` items (default: the windows that tile
    every track once); item ``i`` picks a store by ``weights``, a track by its length and a start
    uniformly, all from ``(seed, epoch, i)``. ``random_crop=False`` (validation): every window
    ``[k·window, (k+1)·window)`` of every done track once, in store, track and start order.
    Frames past a track's end are ``Enc(0)`` of its store (``padding_mask`` False there).

    Each item is a dict: ``latents`` float32 ``[C, D, T]`` (``decode``'s layout; ``.flatten(0, 1)``
    gives stable-audio-tools' ``[C*D, T]``), ``padding_mask`` bool ``[T]``, ``key``, ``store`` (its
    index), ``start_frame``, ``seconds_start``, ``seconds_total``, ``metadata`` (the track's fields
    of the JSON Lines file ``export --metadata`` takes), ``epoch``, ``index``. Batch with
    :func:`lincae_core.data.collate`.
    """

    def __init__(
        self,
        stores: Sequence[LatentStore | str | os.PathLike[str]] | LatentStore | str | os.PathLike[str],
        window_s: float | None = None,
        *,
        window_frames: int | None = None,
        weights: Sequence[float] | None = None,
        random_crop: bool = True,
        length: int | None = None,
        seed: int = 0,
        salient: bool | float = False,
        salient_tries: int = 8,
        metadata: Metadata = None,
        rank: int | None = None,
        world_size: int | None = None,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        """Open the stores (of one model, else ``StoreMismatchError``); unfinished tracks are
        skipped and counted in ``skipped``. ``salient``: redraw (up to ``salient_tries`` times) a
        random crop whose :func:`saliency` is below :data:`SALIENT_RMS` (or this float).
        ``rank``/``world_size``: the DDP rank (default: ``torch.distributed``'s)."""
        super().__init__(seed, rank, world_size)
        many: list[Any] = list(stores) if isinstance(stores, (list, tuple)) else [stores]
        self.sources = [StoreSource(s, cache_bytes) for s in many]
        check_same_model(self.sources)
        self.window = frames_of(self.sources[0].geometry, window_s, window_frames)
        self.frame_rate = self.sources[0].geometry.frame_rate
        self.skipped = sum(s.skipped for s in self.sources)
        w = np.ones(len(self.sources)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(self.sources),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"weights: expected one non-negative weight per store, got {weights}")
        self.weights = w / w.sum()
        self.random_crop = bool(random_crop)
        self.salient = None if salient is False else SALIENT_RMS if salient is True else float(salient)
        self.salient_tries = int(salient_tries)
        self.metadata = load_metadata(metadata)
        counts = [-(-s.frames // self.window) for s in self.sources]  # windows tiling each track
        self._track_store = np.concatenate([np.full(len(s.keys), j) for j, s in enumerate(self.sources)])
        self._track_local = np.concatenate([np.arange(len(s.keys)) for s in self.sources])
        per_track = np.concatenate(counts)
        self._first = np.cumsum(per_track) - per_track  # validation: first window of each track
        self._n_tiles = int(per_track.sum())
        # random crops: a track of a store drawn with probability proportional to its frames
        self._cum = [np.cumsum(s.frames) for s in self.sources]
        live = [j for j, s in enumerate(self.sources) if s.frames.sum() > 0]
        if self.random_crop and not any(self.weights[j] > 0 for j in live):
            raise ConfigError("no done track with frames in the weighted stores")
        self.length = self._n_tiles if length is None or not self.random_crop else int(length)

    def __len__(self) -> int:
        return self.length

    def _draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        p = self.weights * np.asarray([c[-1] > 0 if len(c) else False for c in self._cum])
        j = int(rng.choice(len(self.sources), p=p / p.sum()))
        cum = self._cum[j]
        t = int(np.searchsorted(cum, rng.integers(0, cum[-1]), side="right"))
        f = int(self.sources[j].frames[t])
        return j, t, int(rng.integers(0, max(0, f - self.window) + 1))

    def item(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} outside the epoch's {len(self)}")
        if self.random_crop:
            rng = item_rng(self.seed, self.epoch, index)
            for _ in range(max(1, self.salient_tries if self.salient is not None else 1)):
                j, t, start = self._draw(rng)
                src = self.sources[j]
                z, mask = src.window(t, start, self.window)
                if self.salient is None or saliency(z, src.origin, mask) >= self.salient:
                    break
        else:
            g = int(np.searchsorted(self._first, index, side="right")) - 1
            j, t = int(self._track_store[g]), int(self._track_local[g])
            src = self.sources[j]
            start = (index - int(self._first[g])) * self.window
            z, mask = src.window(t, start, self.window)
        key = src.keys[t]
        return {
            "latents": torch.from_numpy(np.ascontiguousarray(z.transpose(1, 2, 0))),
            "padding_mask": torch.from_numpy(mask),
            "key": key,
            "store": j,
            "start_frame": start,
            "seconds_start": start / self.frame_rate,
            "seconds_total": src.seconds_total(t),
            "metadata": self.metadata.get(key, {}),
            "epoch": self.epoch,
            "index": index,
        }
