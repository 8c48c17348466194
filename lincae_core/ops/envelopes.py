"""Gain curves of latent edits on the latent frame grid (pure: no I/O but :func:`read_envelope`).

Latent frame ``f`` covers samples ``[f*spf, (f+1)*spf)`` and gets a curve's value at its centre,
``(f + 0.5) * spf / sr`` s: linear fades (:func:`fade_gains`), piecewise-linear envelopes
(:func:`envelope_gains`, read from ``time_s,gain`` / ``time_s,db`` files by
:func:`parse_envelope`) and the crossfade ramps of ``concat`` (:func:`ramp_gains`).
:class:`~lincae_core.ops.plan.FrameShape` combines them per frame.

Per-frame gains rest on the homogeneity of the decoder (arXiv:2510.23530, Sec. 3, Eq. 1) applied
frame by frame. Training used one gain per crop, so a gain that changes within the decoder's
context is an extrapolation; how well it holds is measured in ``docs/editing.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from lincae_core.errors import ConfigError

__all__ = [
    "envelope_gains",
    "fade_gains",
    "frame_centres",
    "parse_envelope",
    "ramp_gains",
    "read_envelope",
]


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


def parse_envelope(text: str, name: str = "envelope") -> tuple[np.ndarray, np.ndarray]:
    """Parse a gain curve: ``time_s,gain`` or ``time_s,db`` rows (see docs/editing.md).

    The optional header line names the second column (``gain``: amplitude, the default; ``db``:
    decibels). Commas or whitespace separate columns; ``#`` starts a comment.
    Times must be finite, >= 0 and strictly increasing; dB values finite.

    Returns:
        ``(times, gains)``: seconds and amplitudes (dB rows converted, ``10 ** (dB / 20)``,
        after their interpolation points are read; between points the amplitude is linear).
    """
    rows: list[tuple[float, float]] = []
    unit = "gain"
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
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark is fine
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such envelope file (expected lines of time_s,gain or time_s,db)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not a text file (expected UTF-8 lines of time_s,gain or time_s,db, e.g. a CSV export)"
        ) from None
    return parse_envelope(text, str(path))
