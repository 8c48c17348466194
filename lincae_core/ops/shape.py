"""Time-varying gains and channel matrices of latent edits (pure: no I/O but :func:`read_envelope`).

A :class:`FrameShape` says how every input latent of an operation is shaped before the weighted
sum: a gain per latent frame (an envelope curve times a linear fade-in and fade-out) and a
``[C, C]`` channel matrix (pan, mid/side). Latent frame ``f`` covers samples
``[f*spf, (f+1)*spf)`` and gets the curve's value at its centre, ``(f + 0.5) * spf / sr`` s.

Each shape rests on the linearity of the decoder (arXiv:2510.23530, Sec. 3):

- per-frame gains on homogeneity (Eq. 1) applied frame by frame. Training used one gain per
  crop, so a gain that changes within the decoder's context is an extrapolation; how well it
  holds is measured in ``docs/editing.md``;
- channel matrices on homogeneity and additivity (Eqs. 1-2) across the two latent channels,
  which the model encodes and decodes independently (stereo = two mono signals).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lincae_core.errors import ConfigError

__all__ = [
    "MS_MATRIX",
    "LR_MATRIX",
    "FrameShape",
    "Placement",
    "envelope_gains",
    "fade_gains",
    "frame_centres",
    "pan_gains",
    "parse_envelope",
    "ramp_gains",
    "read_envelope",
]

# Mid/side with halves: M = (L + R) / 2, S = (L - R) / 2, inverse L = M + S, R = M - S. With
# float16 L/R and float32 M/S every step is exact in float32 (halving and the sums are exact).
MS_MATRIX = ((0.5, 0.5), (0.5, -0.5))
LR_MATRIX = ((1.0, 1.0), (1.0, -1.0))


def frame_centres(start: int, n: int, samples_per_frame: int, sample_rate: int) -> np.ndarray:
    """Times in seconds of the centres of frames ``start .. start + n - 1``."""
    return (np.arange(start, start + n, dtype=np.float64) + 0.5) * samples_per_frame / sample_rate


def fade_gains(t: np.ndarray, duration_s: float, fade_in_s: float, fade_out_s: float) -> np.ndarray:
    """Linear (amplitude) fade-in over the first ``fade_in_s`` and fade-out over the last
    ``fade_out_s`` seconds of a track of ``duration_s``, at times ``t``; 0 disables a fade."""
    g = np.ones_like(t)
    if fade_in_s > 0:
        g *= np.clip(t / fade_in_s, 0.0, 1.0)
    if fade_out_s > 0:
        g *= np.clip((duration_s - t) / fade_out_s, 0.0, 1.0)
    return g


def ramp_gains(start: int, n: int, length: int, ramp_in: int, ramp_out: int) -> np.ndarray:
    """Crossfade gains ``[n]`` (float32) of frames ``start..start+n-1`` of a segment of ``length``
    frames: a linear ramp up over its first ``ramp_in`` frames and down over its last ``ramp_out``
    (0: none), each frame at its centre, ``(f + 0.5) / ramp_in`` and ``(length - f - 0.5) /
    ramp_out``. A ramp down over ``W`` frames laid on a ramp up over the same ``W`` frames sums to
    1 at every frame (a linear crossfade).
    """
    f = np.arange(start, start + n, dtype=np.float64) + 0.5
    g = np.ones(n)
    if ramp_in > 0:
        g *= np.clip(f / ramp_in, 0.0, 1.0)
    if ramp_out > 0:
        g *= np.clip((length - f) / ramp_out, 0.0, 1.0)
    return g.astype(np.float32)


def envelope_gains(t: np.ndarray, times: Sequence[float], gains: Sequence[float]) -> np.ndarray:
    """Amplitude of a piecewise-linear curve at ``t`` (held constant before/after its ends)."""
    return np.interp(t, np.asarray(times, np.float64), np.asarray(gains, np.float64))


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law: ``(cos θ, sin θ)``, ``θ = (pan + 1) π / 4``, ``pan`` in [-1, 1].

    ``-1`` keeps only the left channel, ``+1`` only the right, ``0`` scales both by 1/√2 (-3 dB);
    ``gL² + gR² = 1`` everywhere.
    """
    if not (math.isfinite(pan) and -1.0 <= pan <= 1.0):
        raise ConfigError(f"pan: expected a number in [-1, 1], got {pan!r}")
    theta = (pan + 1.0) * math.pi / 4.0
    return math.cos(theta), math.sin(theta)


def parse_envelope(text: str, name: str = "envelope") -> tuple[np.ndarray, np.ndarray]:
    """Parse a gain curve: ``time_s,gain`` or ``time_s,db`` rows (see docs/editing.md).

    The optional header line names the second column (``gain``: amplitude, the default; ``db``:
    decibels). Commas or whitespace separate columns; ``#`` starts a comment.
    Times must be finite, >= 0 and strictly increasing; dB values finite.

    Returns:
        ``(times, gains)``: seconds and amplitudes (dB rows converted, ``10 ** (dB / 20)``,
        after their interpolation points are read; between points the amplitude is linear).
    """
    rows, unit = [], "gain"
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        if not rows and line[0].lower() in ("time_s", "time"):
            unit = line[1].lower() if len(line) == 2 else "?"
            if unit not in ("gain", "db"):
                raise ConfigError(
                    f"{name}: line {n}: expected the header 'time_s,gain' or 'time_s,db'; got {raw.strip()!r}"
                )
            continue
        try:
            t, v = (float(x) for x in line)
        except ValueError:
            raise ConfigError(
                f"{name}: line {n}: expected two numbers 'time_s,{unit}'; got {raw.strip()!r}"
            ) from None
        rows.append((t, v))
    if not rows:
        raise ConfigError(f"{name}: expected at least one 'time_s,{unit}' row; got none")
    times, values = (np.array(c, np.float64) for c in zip(*rows, strict=True))
    if not (
        np.isfinite(times).all()
        and np.isfinite(values).all()
        and times[0] >= 0
        and (np.diff(times) > 0).all()
    ):
        raise ConfigError(f"{name}: expected finite values and times >= 0, strictly increasing")
    return times, (10.0 ** (values / 20.0) if unit == "db" else values)


def read_envelope(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """:func:`parse_envelope` of a file (``times``, amplitudes); dB rows are converted."""
    with open(path, encoding="utf-8") as f:
        return parse_envelope(f.read(), str(path))


@dataclass(frozen=True)
class FrameShape:
    """Per-frame gain (envelope x fades) and channel matrix applied to each input latent.

    Attributes:
        sample_rate, samples_per_frame: The store geometry (frame centres).
        times, gains: Envelope points (seconds, amplitude); empty: no envelope.
        fade_in_s, fade_out_s: Linear fades at the start/end of every track (0: none).
        matrix: ``[C, C]`` channel matrix ``z_out[c] = sum_c' M[c, c'] z[c']`` or None.
    """

    sample_rate: int
    samples_per_frame: int
    times: tuple[float, ...] = ()
    gains: tuple[float, ...] = ()
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    matrix: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        for n, v in (("fade_in", self.fade_in_s), ("fade_out", self.fade_out_s)):
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{n}: expected seconds >= 0, got {v!r}")
        if len(self.times) != len(self.gains):
            raise ConfigError("envelope: expected one gain per time")

    @property
    def time_varying(self) -> bool:
        """True when gains change from frame to frame."""
        return bool(self.times) or self.fade_in_s > 0 or self.fade_out_s > 0

    def frame_gains(self, start: int, n: int, samples: int) -> np.ndarray:
        """Gains ``[n]`` (float32) of frames ``start..start+n-1`` of a track of ``samples``."""
        t = frame_centres(start, n, self.samples_per_frame, self.sample_rate)
        g = fade_gains(t, samples / self.sample_rate, self.fade_in_s, self.fade_out_s)
        if self.times:
            g = g * envelope_gains(t, self.times, self.gains)
        return g.astype(np.float32)

    def apply(self, z: np.ndarray, start: int, samples: int) -> np.ndarray:
        """The shaped latent of frames ``start..`` of a track: reference for the engine's path."""
        out = z.astype(np.float32)
        if self.matrix is not None:
            out = np.einsum("ec,ncd->ned", np.asarray(self.matrix, np.float32), out)
        if self.time_varying:
            out = out * self.frame_gains(start, z.shape[0], samples)[:, None, None]
        return out


@dataclass(frozen=True)
class Placement:
    """Segments placed along their output track, with crossfade ramps (``lincae concat``).

    Plans with a placement have ``K`` lanes instead of ``K`` inputs: lane ``k`` of output track
    ``i`` is a segment of input ``input_index[k]`` that starts at frame ``dst_offset[k, i]`` of the
    output track, reads ``src_frames[k, i]`` frames from ``src_offset[k, i]`` (as in ``OpPlan``)
    and is multiplied by :func:`ramp_gains` with ``ramp_in[k, i]`` and ``ramp_out[k, i]`` frames.

    Attributes:
        input_index: ``(K,)`` input of each lane.
        dst_offset, ramp_in, ramp_out: ``(K, N)`` int64 frames.
    """

    input_index: tuple[int, ...]
    dst_offset: np.ndarray
    ramp_in: np.ndarray
    ramp_out: np.ndarray

    def columns(self, sl: slice) -> Placement:
        """The placement of output tracks ``sl`` only (what one work unit needs)."""
        return Placement(self.input_index, self.dst_offset[:, sl], self.ramp_in[:, sl], self.ramp_out[:, sl])
