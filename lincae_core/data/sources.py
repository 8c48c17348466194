"""The stores a latent dataset reads: done tracks, per-track metadata, ``Enc(0)`` and chunk-cached
reads (each DataLoader worker opens its own reader on first use, so datasets pickle small)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.export.metadata import read_track_metadata
from lincae_core.store import LatentArray, LatentStore, open_store
from lincae_core.store.array import CachedArray
from lincae_core.store.layout import STATUS_DONE

__all__ = ["CACHE_BYTES", "StoreSource", "check_same_model", "frames_of", "load_metadata"]

log = logging.getLogger(__name__)

#: Default chunk-cache budget of one store's reader in one process (a few chunks of a big store).
CACHE_BYTES = 64 * 2**20

Metadata = str | os.PathLike[str] | Mapping[str, Mapping[str, Any]] | None


def load_metadata(metadata: Metadata) -> dict[str, dict[str, Any]]:
    """Per-track metadata: the JSON Lines file ``export --metadata`` takes, or a mapping."""
    if metadata is None:
        return {}
    if isinstance(metadata, (str, os.PathLike)):
        return read_track_metadata(metadata)
    return {k: dict(v) for k, v in metadata.items()}


class StoreSource:
    """One store as a dataset reads it: its done tracks (others skipped and counted), its
    ``Enc(0)`` latent ``[C, D]`` (zeros when the store records none) and a lazily opened
    :class:`CachedArray` of ``cache_bytes``."""

    def __init__(self, store: LatentStore | str | os.PathLike[str], cache_bytes: int = CACHE_BYTES) -> None:
        s = open_store(store)
        self.path, self.cache_bytes = str(s.path), int(cache_bytes)
        self.model_id, self.geometry, self.channels = s.model_id, s.geometry, s.channels
        self.model_card = dict(s.model_card)
        self.origin_default = str(self.model_card.get("origin_default") or "linear")
        if self.origin_default not in ("linear", "affine"):
            self.origin_default = "linear"
        table = s.table()
        done = np.flatnonzero(table["status"] == STATUS_DONE)
        self.skipped = int(table["status"].shape[0] - done.shape[0])
        if self.skipped:
            log.warning("%s: %d unfinished tracks skipped", self.path, self.skipped)
        keys = s.keys()
        self.keys = [keys[i] for i in done.tolist()]
        self.offset = table["offset"][done].astype(np.int64)
        self.frames = table["frames"][done].astype(np.int64)
        self.samples = table["samples"][done].astype(np.int64)
        self.index = {k: i for i, k in enumerate(self.keys)}
        origin = s.origin()
        self.has_origin = origin is not None
        d = self.geometry.latent_dim
        self.origin = np.zeros((self.channels, d), np.float32) if origin is None else origin
        self._reader: CachedArray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None  # each process opens its own
        return state

    @property
    def reader(self) -> CachedArray:
        """The chunk-cached latent array (opened on first use in this process)."""
        if self._reader is None:
            self._reader = CachedArray(LatentArray.open(self.path, "r"), self.cache_bytes)
        return self._reader

    def seconds_total(self, track: int) -> float:
        """The track's duration in seconds (its source samples at the model rate)."""
        return float(self.samples[track]) / self.geometry.sample_rate

    def window(self, track: int, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``[start, start + frames)`` of a track as float32 ``[frames, C, D]``, frames past
        its end filled with ``Enc(0)``; and the padding mask ``[frames]`` (True: a real frame)."""
        f = int(self.frames[track])
        n = max(0, min(frames, f - start))
        out = np.empty((frames, self.channels, self.geometry.latent_dim), np.float32)
        if n:
            a = int(self.offset[track]) + start
            out[:n] = self.reader.read(a, a + n)
        out[n:] = self.origin
        mask = np.zeros(frames, bool)
        mask[:n] = True
        return out, mask


def check_same_model(sources: Sequence[StoreSource]) -> None:
    """Refuse stores of different models (their latents live in different spaces)."""
    first = sources[0]
    for s in sources[1:]:
        if s.model_id != first.model_id:
            raise StoreMismatchError(
                f"{s.path}: encoded by model {s.model_id[:12]}, {first.path} by {first.model_id[:12]}; "
                "a dataset reads stores of one model"
            )
        if s.channels != first.channels or s.geometry != first.geometry:
            raise StoreMismatchError(f"{s.path}: channels or geometry differ from {first.path}")


def frames_of(geometry: Any, window_s: float | None, window_frames: int | None) -> int:
    """The window in latent frames: ``window_frames``, or ``window_s`` rounded half up."""
    if (window_s is None) == (window_frames is None):
        raise ConfigError("give the window as window_s (seconds) or window_frames, not both")
    if window_frames is None:
        assert window_s is not None
        window_frames = math.floor(window_s * geometry.frame_rate + 0.5) if math.isfinite(window_s) else 0
    if int(window_frames) < 1:
        raise ConfigError(f"window: expected at least one latent frame, got {window_s or window_frames}")
    return int(window_frames)
