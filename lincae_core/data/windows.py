"""``LatentWindows``: fixed-length latent windows of one or several stores, for training and
validation (docs/loading.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lincae_core.data.base import EpochDataset, Specs, item_rng
from lincae_core.data.sources import (
    CACHE_BYTES,
    Metadata,
    StoreSource,
    check_same_model,
    frames_of,
    latent_dtype,
    load_metadata,
    read_windows,
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
    :func:`lincae_core.data.collate`, or let the dataset make whole batches (``batch_size``).
    """

    _number_fields = {
        "store": torch.int64,
        "start_frame": torch.int64,
        "seconds_start": torch.float64,
        "seconds_total": torch.float64,
    }

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
        batch_size: int | None = None,
        dtype: torch.dtype | str = torch.float32,
    ) -> None:
        """Open the stores (of one model, else ``StoreMismatchError``); unfinished tracks are
        skipped and counted in ``skipped``. ``salient``: redraw (up to ``salient_tries`` times) a
        random crop whose :func:`saliency` is below :data:`SALIENT_RMS` (or this float).
        ``rank``/``world_size``: the DDP rank (default: ``torch.distributed``'s). ``batch_size``:
        yield whole batches of this many items (:meth:`batch`; use ``DataLoader(…,
        batch_size=None)``). ``dtype``: of ``latents`` (float32; float16 or bfloat16 halve the
        bytes)."""
        super().__init__(seed, rank, world_size, batch_size)
        self.dtype = latent_dtype(dtype)
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
        p = self.weights * np.asarray([c[-1] > 0 if len(c) else False for c in self._cum])
        self._p = p / p.sum() if p.sum() > 0 else p

    def _tensor_specs(self, n: int) -> Specs:
        c, d = self.sources[0].channels, self.sources[0].geometry.latent_dim
        return {
            "latents": ((n, c, d, self.window), self.dtype),
            "padding_mask": ((n, self.window), torch.bool),
        }

    def _pick(self, index: int) -> tuple[int, int, int]:
        """Item ``index``'s ``(store, track, start)``."""
        if not self.random_crop:
            g = int(np.searchsorted(self._first, index, side="right")) - 1
            return (
                int(self._track_store[g]),
                int(self._track_local[g]),
                (index - int(self._first[g])) * self.window,
            )
        rng = item_rng(self.seed, self.epoch, index)
        tries = self.salient_tries if self.salient is not None else 1
        for _ in range(max(1, tries)):
            j = int(rng.choice(len(self.sources), p=self._p))
            cum = self._cum[j]
            t = int(np.searchsorted(cum, rng.integers(0, cum[-1]), side="right"))
            f = int(self.sources[j].frames[t])
            start = int(rng.integers(0, max(0, f - self.window) + 1))
            if self.salient is None:
                break
            src = self.sources[j]
            z, mask = src.window(t, start, self.window)
            if saliency(z, src.origin, mask) >= self.salient:
                break
        return j, t, start

    def _fill(self, indices: Sequence[int], out: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        picks = [self._pick(i) for i in indices]
        z, real = read_windows(
            [(self.sources[j], t, start) for j, t, start in picks], self.window, reuse=True
        )
        out["latents"][:] = z.transpose(0, 2, 3, 1)  # [B, C, D, T]
        out["padding_mask"][:] = np.arange(self.window) < np.asarray(real)[:, None]
        keys = [self.sources[j].keys[t] for j, t, _ in picks]
        return {
            "key": keys,
            "store": [j for j, _, _ in picks],
            "start_frame": [start for _, _, start in picks],
            "seconds_start": [start / self.frame_rate for _, _, start in picks],
            "seconds_total": [self.sources[j].seconds_total(t) for j, t, _ in picks],
            "metadata": [self.metadata.get(k, {}) for k in keys],
        }
