"""``batch_size="auto"``: the batch size of an encode, chosen per device and window length.

On CPU the encoder's cost per window depends on how much audio a forward pass holds: too little
and per-call overhead dominates, too much and the activations spill the caches (measured on the
project's 2-core machines: about 16 s of audio per pass is best, i.e. 2 windows of 10 s, 4 clips
of 4 s, 32 clips of 0.5 s; about 8 s a pass when one pass per core runs at once, the CPU
default; docs/encoding.md, "Batch size"). So ``auto``

1. takes the window length that carries most of the library's audio (:func:`dominant_length`:
   the full window for songs, the clip length for a library of clips);
2. uses the rule (:func:`lincae_core.inference.rule_batch_size`:
   :data:`lincae_core.config.AUTO_BATCH_AUDIO_S` of audio per pass) when the job
   is small; otherwise a short timed probe of the real forward pass over the candidate batch
   sizes around the rule (at most :data:`lincae_core.config.AUTO_BATCH_PROBE_SHARE` of the job's
   forward work), cached per (device, model id, segment length, forward options) in the process.

The chosen value is recorded in the store (``encoding.batch_size``, ``encoding.batch_size_auto``)
and reused when the store is resumed, so a resumed encode batches exactly as the first one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lincae_core.config import AUTO_BATCH_CANDIDATES, AUTO_BATCH_PROBE_SHARE, InferenceConfig
from lincae_core.encoding.forward import encoder_forward, encoder_memory_format, parallel_passes
from lincae_core.encoding.settings import EncodeSettings
from lincae_core.inference import rule_batch_size
from lincae_core.nn.model import LinCAE
from lincae_core.windowing import window_span

__all__ = ["BatchChoice", "WindowLength", "auto_batch_size", "choose_batch_size", "dominant_length"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchChoice:
    """A resolved ``batch_size="auto"``: the value, how it was found, and the probe's timings."""

    batch_size: int
    how: str  # "rule", "probe" or "store"
    segment_frames: int = 0
    ms_per_segment: dict[int, float] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        """JSON-ready record for the store's ``encoding.batch_size_auto``."""
        return {
            "how": self.how,
            "segment_frames": self.segment_frames,
            "ms_per_segment": {str(k): round(v, 3) for k, v in self.ms_per_segment.items()},
        }


_CACHE: dict[Hashable, BatchChoice] = {}


class WindowLength(NamedTuple):
    """The window length (latent frames) carrying most of a table's audio, and its windows."""

    frames: int
    windows: int


def dominant_length(frames: np.ndarray, window: int, overlap: int) -> WindowLength:
    """The window length (frames) carrying the most frames of the table, and the number of windows.

    A track longer than ``window`` is cut into windows of exactly ``window`` frames
    (:func:`lincae_core.windowing.plan_windows`); a shorter one is one window of its own length.
    """
    f = np.asarray(frames, np.int64)
    if f.size == 0:
        return WindowLength(window, 0)
    long_ = f > window
    hop = window - overlap
    n_long = -(-(f[long_] - window) // hop) + 1  # len(plan_windows(f, window, overlap))
    weight: dict[int, int] = {window: int((n_long * window).sum())}
    short, counts = np.unique(np.maximum(f[~long_], 1), return_counts=True)
    for length, c in zip(short.tolist(), counts.tolist(), strict=True):
        weight[length] = weight.get(length, 0) + length * c
    return WindowLength(max(weight, key=lambda k: (weight[k], k)), int(n_long.sum() + (~long_).sum()))


def choose_batch_size(
    forward: Callable[[np.ndarray], object],
    *,
    device_type: str,
    cache_key: Hashable,
    segment_frames: int,
    segment_samples: int,
    sample_rate: int,
    job_segments: int,
    passes: int = 1,
) -> BatchChoice:
    """Resolve ``batch_size="auto"`` for segments of ``segment_samples`` (see the module doc).

    Args:
        forward: The encode's own forward pass, ``[N, L] -> latents``.
        device_type: ``"cpu"`` or ``"cuda"``.
        cache_key: Identifies model, device and forward options (the probe is cached under it).
        segment_frames: Latent frames of the segments (recorded).
        segment_samples: Audio samples L of one segment.
        sample_rate: The model's sample rate.
        job_segments: Forward segments the whole job will run (sizes the probe's budget).
        passes: Forward passes the encode runs at once (one per core, one thread each, the CPU
            default; :func:`rule_batch_size`). ``forward`` then runs that many passes of its
            input at once, and the probe counts ``passes * len(x)`` windows a call.
    """
    key = (cache_key, segment_samples, passes)
    if key in _CACHE:
        return _CACHE[key]
    rule = rule_batch_size(device_type, segment_samples, sample_rate, passes > 1)
    cands = [c for c in AUTO_BATCH_CANDIDATES if c <= max(2 * rule, 2)]
    budget = AUTO_BATCH_PROBE_SHARE * job_segments
    # the probe runs every candidate up to 2x the rule twice (plus a warm-up pass of one)
    if passes * (1 + 2 * sum(cands)) > budget:
        return BatchChoice(rule, "rule", segment_frames)
    x = (0.1 * np.random.default_rng(0).standard_normal((cands[-1], segment_samples))).astype(np.float32)
    forward(x[:1])  # warm-up (allocator, first-call paths)
    per: dict[int, float] = {}
    for c in cands:
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            forward(x[:c])
            best = min(best, time.perf_counter() - t0)
        per[c] = 1e3 * best / (c * passes)
    choice = BatchChoice(min(per, key=lambda c: (per[c], c)), "probe", segment_frames, per)
    _CACHE[key] = choice
    return choice


def auto_batch_size(
    model: LinCAE, inference: InferenceConfig, settings: EncodeSettings, frames: np.ndarray
) -> BatchChoice:
    """Resolve ``batch_size="auto"`` for a table of tracks of ``frames`` latent frames each, with the
    encode's own forward pass on ``model`` (see the module doc). Logged on stderr."""
    cfg, device = model.config, next(model.parameters()).device
    settings = settings.for_device(device.type)
    window, overlap = inference.frames(cfg)
    length, n_windows = dominant_length(frames, window, overlap)
    a, b = window_span(0, length, cfg)
    passes = settings.forward_workers()  # on CPU by default one pass per core at once
    forward: Callable[[np.ndarray], object] = encoder_forward(model, settings)
    if passes > 1:  # the probe times the passes as the encode runs them
        forward = parallel_passes(forward, passes)
    with encoder_memory_format(model, bool(settings.channels_last)):
        choice = choose_batch_size(
            forward,
            device_type=device.type,
            cache_key=(
                str(device),
                model.model_id,
                bool(settings.channels_last),
                settings.autocast,
                settings.compile,
                settings.amp,
            ),
            segment_frames=length,
            segment_samples=b - a,
            sample_rate=cfg.sample_rate,
            job_segments=0 if settings.compile else n_windows * settings.latent_channels,  # no
            passes=passes,
        )  # probe when compiling: every candidate shape would compile first
    per = ", ".join(f"{k}: {v:.1f}" for k, v in choice.ms_per_segment.items())
    log.info(
        "batch size auto: %d on %s for windows of %d frames (%s%s)",
        choice.batch_size,
        device,
        length,
        choice.how,
        f"; ms per window {per}" if per else "",
    )
    return choice
