"""Separation SDR as the source-separation community reads it (beside the paper's SI-SDR).

Two conventions, both on mono signals ``[T]`` (estimate first, reference second):

- **BSSEval v4** (museval, SiSEC 2018; ``bss_eval_images`` with time-invariant filters): the SDR of
  each 1-s frame (non-overlapping, ``window = hop = 1 s``; a last partial frame is dropped and a
  track shorter than a frame is one frame) is ``10·log10(Σ s² / Σ (ŝ − s)²)``: in the *images*
  version the spatial, interference and artefact errors add up to ``ŝ − s``, so the 512-tap
  distortion filters of v4 cancel out of the SDR. Per track, the median over frames; over tracks,
  the median of the track medians (:func:`median_over_tracks`).
  A frame whose reference (or estimate) is digital silence (all zeros) has no SDR: it is skipped
  and counted, as museval sets it to NaN. museval evaluates the four targets of a track jointly
  and skips a frame when *any* target is silent there; here each stem is scored on its own, so a
  silent vocals frame does not remove the bass of that frame.
- **MDX "global" SDR** (Music Demixing Challenge 2021, Mitsufuji et al. 2022):
  ``10·log10((Σ s² + δ) / (Σ (s − ŝ)² + δ))`` over the whole track with ``δ = 1e-7``; the mean
  over tracks (:func:`mean_over_tracks`). It never fails on silence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from lincae_core.errors import ShapeMismatchError

__all__ = [
    "MDX_DELTA",
    "FrameSDR",
    "bsseval_v4_sdr",
    "global_sdr",
    "mean_over_tracks",
    "median_over_tracks",
]

MDX_DELTA = 1e-7


@dataclass(frozen=True)
class FrameSDR:
    """BSSEval v4 SDR of one track: the median over scored frames, and the frame counts."""

    median: float  # NaN when every frame was silent
    frames: int  # frames in the track
    silent: int  # frames skipped (silent reference or estimate)


Signal = torch.Tensor | np.ndarray


def _numpy(x: Signal) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, np.float64)


def _pair(estimate: Signal, reference: Signal) -> tuple[np.ndarray, np.ndarray]:
    est, ref = _numpy(estimate), _numpy(reference)
    if est.ndim != 1 or est.shape != ref.shape:
        raise ShapeMismatchError(
            f"Expected two mono signals [T] of one length. Got {est.shape} and {ref.shape} instead."
        )
    return est, ref


def bsseval_v4_sdr(estimate: Signal, reference: Signal, sample_rate: int, window_s: float = 1.0) -> FrameSDR:
    """BSSEval v4 (museval) SDR of one track: per-frame SDR, median over the non-silent frames.

    Args:
        estimate: ŝ, ``[T]``.
        reference: s, ``[T]``.
        sample_rate: Hz (the frame is ``window_s`` seconds; museval's default is 1 s).
        window_s: frame length and hop in seconds.

    Returns:
        The median SDR in dB (``inf`` for a frame with a perfect estimate, as museval) and the
        number of frames and of silent frames skipped.
    """
    est, ref = _pair(estimate, reference)
    win, length = max(1, round(window_s * sample_rate)), ref.shape[0]
    n = length // win if win < length else 1  # museval Framing with hop = window
    scores, silent = [], 0
    for i in range(n):
        s, e = ref[i * win : min((i + 1) * win, length)], est[i * win : min((i + 1) * win, length)]
        if not s.any() or not e.any():
            silent += 1
            continue
        noise = float(np.sum((e - s) ** 2))
        scores.append(math.inf if noise == 0 else 10 * math.log10(float(np.sum(s**2)) / noise))
    return FrameSDR(float(np.median(scores)) if scores else math.nan, n, silent)


def global_sdr(estimate: Signal, reference: Signal, delta: float = MDX_DELTA) -> float:
    """MDX 2021 "global" SDR of one track: ``10·log10((Σ s² + δ) / (Σ (s − ŝ)² + δ))`` in dB."""
    est, ref = _pair(estimate, reference)
    return float(10 * np.log10((np.sum(ref**2) + delta) / (np.sum((ref - est) ** 2) + delta)))


def median_over_tracks(values: Iterable[float]) -> float | None:
    """The BSSEval v4 aggregate: median of the track medians, NaN tracks (all silent) left out."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.median(kept)) if kept else None


def mean_over_tracks(values: Iterable[float]) -> float | None:
    """The MDX aggregate: mean of the per-track global SDRs."""
    kept = list(values)
    return float(np.mean(kept)) if kept else None
