"""The stores a latent dataset reads: done tracks, per-track metadata, ``Enc(0)`` and chunk-cached
reads (each DataLoader worker opens its own reader on first use, so datasets pickle small)."""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.export.metadata import read_track_metadata
from lincae_core.store import LatentArray, LatentStore, open_store
from lincae_core.store.array import CachedArray
from lincae_core.store.layout import STATUS_DONE

__all__ = [
    "CACHE_BYTES",
    "LATENT_DTYPES",
    "SCRATCH_BYTES",
    "StoreSource",
    "check_same_model",
    "frames_of",
    "latent_dtype",
    "load_metadata",
    "read_windows",
    "scratch",
    "to_float32",
]

log = logging.getLogger(__name__)

#: Default chunk-cache budget of one store's reader in one process (a few chunks of a big store).
CACHE_BYTES = 64 * 2**20

Metadata = str | os.PathLike[str] | Mapping[str, Mapping[str, Any]] | None

#: The dtypes a dataset can give its latents in (``dtype=``): float32 (the default) or a
#: half-size float (the mixing is done in float32 and rounded once).
LATENT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def latent_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``dtype=`` of a dataset as a torch dtype (``"float16"`` or ``torch.float16``)."""
    got = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if got not in LATENT_DTYPES:
        raise ConfigError(f"dtype: expected one of float32, float16, bfloat16, got {dtype!r}")
    return got


def to_float32(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a`` as float32 (itself when it is and no ``out`` is given), into ``out`` when given.
    float16 goes through torch, whose vectorised conversion is ~10x numpy's here (numpy converts
    half floats one by one)."""
    if out is None:
        if a.dtype == np.float32:
            return a
        out = np.empty(a.shape, np.float32)
    if a.dtype == np.float16:
        torch.from_numpy(out).copy_(torch.from_numpy(a))
    else:
        out[...] = a
    return out


#: Largest scratch buffer :func:`scratch` keeps for reuse (bigger ones are allocated each time).
SCRATCH_BYTES = 64 * 2**20
_scratch = threading.local()


def scratch(name: str, shape: Sequence[int], dtype: Any) -> np.ndarray:
    """A buffer of ``shape`` kept for the calling thread under ``name`` and handed out again on
    the next call: valid until then. A fresh array of a batch's size costs a page fault per 4 KiB
    the first time it is written (most of a worker's system time here); a reused one does not."""
    dtype = np.dtype(dtype)
    n = math.prod(shape) * dtype.itemsize
    if n > SCRATCH_BYTES:
        return np.empty(tuple(shape), dtype)
    buf = getattr(_scratch, name, None)
    if buf is None or buf.nbytes < n:
        buf = np.empty(n, np.uint8)
        setattr(_scratch, name, buf)
    return buf[:n].view(dtype).reshape(tuple(shape))


class _ChunkReader(CachedArray):
    """A :class:`CachedArray` whose chunk length and dtype are read once: Zarr's metadata
    lookups behind them cost microseconds a call, several calls a window."""

    def __init__(self, array: LatentArray, budget_bytes: int) -> None:
        super().__init__(array, budget_bytes)
        self._chunk_frames, self._dtype = int(array.chunk_frames), np.dtype(array.dtype)

    @property
    def chunk_frames(self) -> int:
        return self._chunk_frames

    @property
    def dtype(self) -> np.dtype:
        return self._dtype


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
        self._spans: tuple[list[int], list[int]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = state["_spans"] = None  # each process opens its own
        return state

    @property
    def reader(self) -> CachedArray:
        """The chunk-cached latent array (opened on first use in this process)."""
        if self._reader is None:
            self._reader = _ChunkReader(LatentArray.open(self.path, "r"), self.cache_bytes)
        return self._reader

    def seconds_total(self, track: int) -> float:
        """The track's duration in seconds (its source samples at the model rate)."""
        return float(self.samples[track]) / self.geometry.sample_rate

    def window(self, track: int, start: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``[start, start + frames)`` of a track as float32 ``[frames, C, D]``, frames past
        its end filled with ``Enc(0)``; and the padding mask ``[frames]`` (True: a real frame)."""
        z, real = read_windows([(self, int(track), int(start))], frames)
        return z[0], np.arange(frames) < real[0]


def read_windows(
    picks: Sequence[tuple[StoreSource, int, int]], frames: int, reuse: bool = False
) -> tuple[np.ndarray, list[int]]:
    """Windows of ``frames`` frames, one a ``(source, track, start)``, as float32
    ``[len(picks), frames, C, D]``, frames past a track's end filled with its store's ``Enc(0)``;
    and the real frames of each window. Each window is sliced from its store's cached chunks in
    the storage dtype and the whole set converted to float32 at once (per-call costs dominate at
    these sizes, so the windows of a batch, or of an item's stems, share one call). ``reuse``:
    the result is a :func:`scratch` buffer of this thread, valid until the next such call."""
    first = picks[0][0]
    dtype = np.result_type(*{p[0].reader.dtype for p in picks})
    shape = (len(picks), frames, first.channels, first.geometry.latent_dim)
    raw = scratch("raw", shape, dtype)
    real = []
    for j, (src, t, s) in enumerate(picks):
        if src._spans is None:  # plain ints: numpy's per-call costs show at this rate
            src._spans = (src.offset.tolist(), src.frames.tolist())
        offset, length = src._spans
        n = max(0, min(frames, length[t] - s))
        if n:
            a = offset[t] + s
            raw[j, :n] = src.reader.read(a, a + n)
        real.append(n)
    if raw.dtype == np.float32:
        out = raw if reuse else raw.copy()
    else:
        out = to_float32(raw, scratch("float32", shape, np.float32) if reuse else None)
    for j, n in enumerate(real):
        if n < frames:
            out[j, n:] = picks[j][0].origin
    return out, real


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
