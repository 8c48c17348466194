"""``LatentMixtures``: mixtures made on the fly from stores of stems paired by key, with their
targets, for latent-domain separation and mixing models (docs/loading.md)."""

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
from lincae_core.linearity import trained_gain_range
from lincae_core.location import as_location
from lincae_core.store import LatentStore

__all__ = ["LatentMixtures"]

StoreArg = LatentStore | str | os.PathLike[str]


def _stem_name(store: StoreArg) -> str:
    path = as_location(store.path if isinstance(store, LatentStore) else store)
    return path.name.removesuffix(".zarr")


class LatentMixtures(EpochDataset):
    """Mixtures ``Σ gᵢ·zᵢ`` of stems paired by key (``vocals.zarr``, ``drums.zarr``, …).

    The tracks are the keys done in every stem store (others skipped and counted in ``skipped``).
    Item ``i`` of an epoch draws, from ``(seed, epoch, i)`` alone: a track (with
    ``cross_track=True``: each stem from its own track), a window start, a subset of
    ``min_stems … max_stems`` stems and a gain per stem uniform in ``gain_range`` (default: the
    range the model card says it was trained on, ``trained_gain_range``; ``[0.5, 1.5]`` when the
    card records none). ``origin`` (default: the form the card selects, ``origin_default``):
    ``"linear"`` gives ``Σ gᵢ zᵢ`` and targets ``gᵢ zᵢ``; ``"affine"`` gives
    ``Σ gᵢ zᵢ + (1 − Σ gᵢ)·Enc(0)`` and targets ``gᵢ zᵢ + (1 − gᵢ)·Enc(0)`` (each target is the
    latent of its scaled stem in the same form; docs/method.md §4.2). A stem left out has the
    target of silence (zeros, or ``Enc(0)`` when affine) and ``present`` False.

    Each item is a dict: ``mixture`` float32 ``[C, D, T]``, ``targets`` ``[S, C, D, T]``,
    ``present`` bool ``[S]``, ``gains`` ``[S]``, ``padding_mask`` bool ``[T]`` (frames of the
    shortest chosen stem), ``keys`` (each stem's track), ``start_frames`` ``[S]``, ``key``,
    ``start_frame``, ``seconds_start``, ``seconds_total`` (of the first chosen stem), ``metadata``,
    ``epoch``, ``index``. ``stems`` names the ``S`` stems in order. Batch with
    :func:`lincae_core.data.collate`, or let the dataset make whole batches (``batch_size``).
    """

    _number_fields = {
        "start_frame": torch.int64,
        "seconds_start": torch.float64,
        "seconds_total": torch.float64,
    }

    def __init__(
        self,
        stems: Mapping[str, StoreArg] | Sequence[StoreArg],
        window_s: float | None = None,
        *,
        window_frames: int | None = None,
        length: int | None = None,
        seed: int = 0,
        min_stems: int = 1,
        max_stems: int | None = None,
        gain_range: tuple[float, float] | None = None,
        origin: str | None = None,
        cross_track: bool = False,
        metadata: Metadata = None,
        rank: int | None = None,
        world_size: int | None = None,
        cache_bytes: int = CACHE_BYTES,
        batch_size: int | None = None,
        dtype: torch.dtype | str = torch.float32,
    ) -> None:
        """Open the stem stores (a mapping name → store, or stores named after their file:
        ``vocals.zarr`` → ``vocals``); stores of different models are refused. ``length``: items
        an epoch (default: the paired tracks). ``rank``/``world_size``, ``batch_size`` (whole
        batches) and ``dtype`` (of ``mixture`` and ``targets``, mixed in float32): as
        :class:`LatentWindows`."""
        super().__init__(seed, rank, world_size, batch_size)
        self.dtype = latent_dtype(dtype)
        named = dict(stems) if isinstance(stems, Mapping) else {_stem_name(s): s for s in stems}
        if len(named) < 1:
            raise ConfigError("stems: expected at least one stem store")
        self.stems = list(named)
        self.sources = [StoreSource(s, cache_bytes) for s in named.values()]
        check_same_model(self.sources)
        first = self.sources[0]
        self.window = frames_of(first.geometry, window_s, window_frames)
        self.frame_rate = first.geometry.frame_rate
        common = [k for k in first.keys if all(k in s.index for s in self.sources[1:])]
        every = set().union(*(s.keys for s in self.sources))
        self.skipped = sum(s.skipped for s in self.sources) + len(every) - len(common)
        if not common:
            raise ConfigError("stems: no track key is done in every stem store")
        self.keys = common
        self._rows = np.asarray([[s.index[k] for s in self.sources] for k in common], np.int64)  # [N, S]
        n = len(self.stems)
        self.min_stems, self.max_stems = int(min_stems), n if max_stems is None else int(max_stems)
        if not 1 <= self.min_stems <= self.max_stems <= n:
            raise ConfigError(
                f"min_stems/max_stems: expected 1 <= min <= max <= {n}, got {min_stems}, {max_stems}"
            )
        rng = trained_gain_range(first.model_card) if gain_range is None else gain_range
        lo, hi = (0.5, 1.5) if rng is None or rng[1] <= rng[0] else (float(rng[0]), float(rng[1]))
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise ConfigError(f"gain_range: expected two finite numbers low <= high, got {gain_range}")
        self.gain_range = (lo, hi)
        self.origin = first.origin_default if origin is None else origin
        if self.origin not in ("linear", "affine"):
            raise ConfigError(f"origin: expected 'linear' or 'affine', got {origin!r}")
        self.cross_track = bool(cross_track)
        self.metadata = load_metadata(metadata)
        self.length = len(common) if length is None else int(length)

    def _tensor_specs(self, n: int) -> Specs:
        k, c, d, w = (
            len(self.stems),
            self.sources[0].channels,
            self.sources[0].geometry.latent_dim,
            self.window,
        )
        return {
            "mixture": ((n, c, d, w), self.dtype),
            "targets": ((n, k, c, d, w), self.dtype),
            "present": ((n, k), torch.bool),
            "gains": ((n, k), torch.float32),
            "padding_mask": ((n, w), torch.bool),
            "start_frames": ((n, k), torch.int64),
        }

    def _draw(
        self, index: int, present: np.ndarray, gains: np.ndarray, rows: np.ndarray, starts: np.ndarray
    ) -> None:
        """Item ``index``'s stems, gains, tracks (rows of each stem store) and starts, written
        into the ``[S]`` arrays given."""
        rng = item_rng(self.seed, self.epoch, index)
        n, w = len(self.stems), self.window
        k = int(rng.integers(self.min_stems, self.max_stems + 1))
        chosen = np.sort(rng.choice(n, size=k, replace=False))
        present[:] = False
        present[chosen] = True
        gains[:] = 0
        gains[chosen] = rng.uniform(*self.gain_range, size=k).astype(np.float32)
        if self.cross_track:
            rows[:] = self._rows[rng.integers(0, len(self.keys), size=n), np.arange(n)]
            for s in range(n):
                f = int(self.sources[s].frames[rows[s]])
                starts[s] = int(rng.integers(0, max(0, f - w) + 1))
        else:  # one track, one start for every stem
            rows[:] = self._rows[int(rng.integers(0, len(self.keys)))]
            starts[:] = int(rng.integers(0, max(0, int(self.sources[0].frames[rows[0]]) - w) + 1))

    def _fill(self, indices: Sequence[int], out: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        b, n, w = len(indices), len(self.stems), self.window
        present, gains, starts = out["present"], out["gains"], out["start_frames"]
        targets, mixture, rows = out["targets"], out["mixture"], np.empty((b, n), np.int64)
        for r, i in enumerate(indices):
            self._draw(i, present[r], gains[r], rows[r], starts[r])
        chosen, row, start = present.tolist(), rows.tolist(), starts.tolist()
        picks = [
            (self.sources[s], row[r][s], start[r][s]) for r in range(b) for s in range(n) if chosen[r][s]
        ]
        z, got = read_windows(picks, w, reuse=True)  # every chosen stem of every item, [k, T, C, D]
        if len(picks) == b * n:  # gᵢ·zᵢ as [B, S, C, D, T] in one pass
            scaled = z.reshape(b, n, *z.shape[1:]).transpose(0, 1, 3, 4, 2)
            np.multiply(scaled, gains[:, :, None, None, None], out=targets)
            real = [min(got[r * n : (r + 1) * n]) for r in range(b)]
        else:
            real, j = [w] * b, 0
            for r in range(b):
                for s in range(n):
                    if chosen[r][s]:
                        np.multiply(z[j].transpose(1, 2, 0), gains[r, s], out=targets[r, s])
                        real[r] = min(real[r], got[j])
                        j += 1
                    else:
                        targets[r, s] = 0  # a stem left out
        np.sum(targets, axis=1, out=mixture)
        if self.origin == "affine":
            origin = self.sources[0].origin[:, :, None]  # Enc(0) [C, D, 1]
            mixture += (1 - gains.sum(axis=1))[:, None, None, None] * origin
            targets += (1 - gains)[:, :, None, None, None] * origin
        out["padding_mask"][:] = np.arange(w) < np.asarray(real)[:, None]
        first = [c.index(True) for c in chosen]  # the first chosen stem of each item
        keys = [[self.sources[s].keys[row[r][s]] for s in range(n)] for r in range(b)]
        key = [keys[r][first[r]] for r in range(b)]
        at = [start[r][first[r]] for r in range(b)]
        return {
            "keys": keys,
            "key": key,
            "start_frame": at,
            "seconds_start": [x / self.frame_rate for x in at],
            "seconds_total": [self.sources[first[r]].seconds_total(row[r][first[r]]) for r in range(b)],
            "metadata": [self.metadata.get(k, {}) for k in key],
        }
