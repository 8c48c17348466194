"""Integrated loudness (ITU-R BS.1770-4) of an audio stream, measured block by block.

:class:`StreamLoudness` takes the signal in consecutive pieces and keeps one number per 100 ms
(the K-weighted energy of each 100 ms step, summed over channels), so memory grows by 4 bytes
per 100 ms and never holds the audio. The K-weighting filters (pre-filter shelf and RLB
high-pass, designed for the stream's rate) are pyloudnorm's, run with carried state; the gating
(400 ms blocks every 100 ms, absolute gate -70 LUFS, relative gate -10 LU) follows
``pyloudnorm.Meter.integrated_loudness``, which the tests use as the reference.

The result is NaN when the signal is shorter than one 400 ms block or every block lies below
the absolute gate (silence): "unmeasured" in the store (``tracks/loudness_lufs``).
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
import scipy.signal

__all__ = ["StreamLoudness", "integrated_loudness"]

BLOCK_S, STEP_S = 0.4, 0.1
ABSOLUTE_GATE, RELATIVE_GATE = -70.0, -10.0


class StreamLoudness:
    """Integrated loudness of ``[C, n]`` pieces fed in order (channel weights 1: mono, stereo)."""

    def __init__(self, rate: int, channels: int) -> None:
        meter = pyloudnorm.Meter(rate)
        self.rate, self.channels, self.samples = rate, channels, 0
        self._stages = [(f.b, f.a, f.passband_gain) for f in meter._filters.values()]
        self._zi = [np.zeros((channels, max(len(a), len(b)) - 1)) for b, a, _ in self._stages]
        self._step = int(round(STEP_S * rate))
        self._steps: list[float] = []
        self._partial = 0.0

    def feed(self, x: np.ndarray) -> None:
        """Append the next samples ``x[C, n]`` of the signal."""
        y = np.asarray(x, dtype=np.float64).reshape(self.channels, -1)
        for s, (b, a, g) in enumerate(self._stages):
            y, self._zi[s] = scipy.signal.lfilter(b, a, y, axis=-1, zi=self._zi[s])
            y = g * y
        e = np.square(y).sum(axis=0)
        pos = 0
        while pos < e.size:
            fill = self.samples % self._step
            take = min(self._step - fill, e.size - pos)
            self._partial += float(e[pos : pos + take].sum())
            pos += take
            self.samples += take
            if self.samples % self._step == 0:
                self._steps.append(self._partial)
                self._partial = 0.0

    def integrated(self) -> float:
        """Gated integrated loudness in LUFS, or NaN (too short, or silent)."""
        block = int(round(BLOCK_S * self.rate))
        if self.samples < block:
            return float("nan")
        per = block // self._step
        steps = np.array([*self._steps, self._partial] if self.samples % self._step else self._steps)
        steps = np.concatenate([steps, np.zeros(per)])
        n = int(np.round((self.samples / self.rate - BLOCK_S) / STEP_S)) + 1
        z = np.array([steps[j : j + per].sum() for j in range(n)]) / block
        with np.errstate(divide="ignore"):
            lj = -0.691 + 10.0 * np.log10(z)
        z = z[lj >= ABSOLUTE_GATE]
        if z.size == 0:
            return float("nan")
        rel = -0.691 + 10.0 * np.log10(z.mean()) + RELATIVE_GATE
        with np.errstate(divide="ignore"):
            kept = z[-0.691 + 10.0 * np.log10(z) > rel]
        return float(-0.691 + 10.0 * np.log10(kept.mean())) if kept.size else float("nan")


def integrated_loudness(x: np.ndarray, rate: int, piece: int = 65536) -> float:
    """Integrated loudness of a whole ``[C, n]`` (or ``[n]``) signal, fed in ``piece``-sample parts."""
    x = np.atleast_2d(x)
    meter = StreamLoudness(rate, x.shape[0])
    for a in range(0, x.shape[1], piece):
        meter.feed(x[:, a : a + piece])
    return meter.integrated()
