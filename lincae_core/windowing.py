"""Windows of long signals: plan, cross-fade regions, audio spans and overlap-add.

The one implementation used by inference (:mod:`lincae_core.inference`), the store encoder
(:mod:`lincae_core.encoding`) and the store decoder (:mod:`lincae_core.decoding`). Long signals are
cut into windows of W latent frames that overlap by O frames (:func:`plan_windows`); each window
is encoded/decoded on its own and the pieces are joined by a linear cross-fade
(:class:`OverlapAdd`), latents on encode, audio on decode::

    window i    |=========\\            weight 1 in the middle of a window,
    window i+1         /=========|     linear ramps over each overlap, sum of weights = 1

On decode a window's first ``n_fft - hop`` samples are only partly covered by STFT frames (an
edge fade), so they get weight 0 and the cross-fade starts after them
(:func:`decode_valid_spans`). docs/method.md section 4.1 states the windowing rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "OverlapAdd",
    "crossfade_regions",
    "decode_valid_spans",
    "plan_windows",
    "ramp_weights",
    "window_span",
]


def plan_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Cut Z frames into windows [start, stop) of ``window`` frames overlapping by >= ``overlap``.

    Every window has exactly ``window`` frames (the last one is moved back to end at Z) unless
    the whole signal is shorter, so windows of different tracks batch together.
    """
    if num_frames <= window:
        return [(0, max(num_frames, 1))]
    hop = window - overlap
    starts = list(range(0, num_frames - window, hop)) + [num_frames - window]
    return [(s, s + window) for s in starts]


def crossfade_regions(plan: list[tuple[int, int]], overlap: int) -> list[tuple[int, int]]:
    """Frame regions that take part in the cross-fade: each window, except that the last one
    (moved back to end at Z) only fades in over the last ``overlap`` frames of its predecessor,
    so that no frame is covered by three windows."""
    regions = list(plan)
    if len(plan) > 1:
        s, e = plan[-1]
        regions[-1] = (max(s, plan[-2][1] - overlap), e)
    return regions


def window_span(start: int, stop: int, model_or_cfg: Any) -> tuple[int, int]:
    """Audio samples [a, b) a window of latent frames [start, stop) encodes from / decodes to."""
    cfg = getattr(model_or_cfg, "config", model_or_cfg)
    return start * cfg.samples_per_frame, stop * cfg.samples_per_frame + cfg.n_fft - cfg.hop


def ramp_weights(valid: Sequence[tuple[int, int]], i: int, data_start: int, length: int) -> np.ndarray:
    """Cross-fade weights of piece i over its data [data_start, data_start+length)."""
    pos = np.arange(data_start, data_start + length, dtype=np.float64)
    va, vb = valid[i]
    w = ((pos >= va) & (pos < vb)).astype(np.float64)
    if i > 0 and valid[i - 1][1] > va:  # fade in over the overlap with the previous piece
        a, b = va, valid[i - 1][1]
        w *= np.clip((pos - a + 0.5) / (b - a), 0.0, 1.0)
    if i + 1 < len(valid) and valid[i + 1][0] < vb:  # fade out over the overlap with the next
        a, b = valid[i + 1][0], vb
        w *= np.clip((b - pos - 0.5) / (b - a), 0.0, 1.0)
    return w.astype(np.float32)


class OverlapAdd:
    """Weighted overlap-add along the last axis with streaming output (bounded memory)."""

    def __init__(self, lead_shape: tuple[int, ...], length: int = 0) -> None:
        """Start an empty accumulator; ``length`` preallocates that many output positions."""
        self.base = 0
        self.acc = np.zeros((*lead_shape, length), np.float32)
        self.wsum = np.zeros(length, np.float32)

    def add(self, start: int, data: np.ndarray, weight: np.ndarray) -> None:
        """Accumulate ``data[..., n]`` weighted by ``weight[n]`` at global position ``start``."""
        if start < self.base:  # a leading part already flushed must carry no weight
            cut = self.base - start
            if np.any(weight[:cut] > 0):
                raise ValueError(f"OverlapAdd: piece at {start} overlaps flushed output (< {self.base}).")
            data, weight, start = data[..., cut:], weight[cut:], self.base
        end = start + data.shape[-1]
        grow = end - self.base - self.wsum.shape[0]
        if grow > 0:
            self.acc = np.concatenate([self.acc, np.zeros((*self.acc.shape[:-1], grow), np.float32)], -1)
            self.wsum = np.concatenate([self.wsum, np.zeros(grow, np.float32)])
        a, b = start - self.base, end - self.base
        self.acc[..., a:b] += data * weight
        self.wsum[a:b] += weight

    def pop(self, upto: int) -> np.ndarray:
        """Return the finished samples [base, upto), normalised by the summed weights."""
        n = upto - self.base
        out = self.acc[..., :n] / np.maximum(self.wsum[:n], 1e-12)
        self.acc, self.wsum = self.acc[..., n:], self.wsum[n:]
        self.base = upto
        return out


def decode_valid_spans(regions: list[tuple[int, int]], cfg: Any) -> list[tuple[int, int]]:
    """Trusted audio interval of each decoded window (the leading OLA edge is dropped)."""
    edge = cfg.n_fft - cfg.hop
    valid = []
    for i, (s, e) in enumerate(regions):
        a, b = window_span(s, e, cfg)
        valid.append((a + (edge if i > 0 else 0), b if i == len(regions) - 1 else b - edge))
    return valid
