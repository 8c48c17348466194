"""Small audio libraries written by the tests (seeded sines with noise, one stereo file, one file
at another rate), so that encodes have varied lengths, rates and channel counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def write_library(
    root: Path,
    n: int = 6,
    *,
    seconds: tuple[float, float] = (1.0, 0.3),
    odd_rate: int = 22050,
    seed: int = 7,
    name: str = "s",
) -> Path:
    """``n`` WAVs ``{name}{i}.wav`` of ``seconds[0] + seconds[1] * i`` s at 16 kHz; file 2 is stereo at
    ``odd_rate`` (and file 1 too when ``n`` is 2 or less); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    odd = 2 if n > 2 else n - 1
    for i in range(n):
        rate = odd_rate if i == odd else 16000
        t = np.arange(int(rate * (seconds[0] + seconds[1] * i))) / rate
        x = 0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t) + 0.02 * rng.standard_normal(t.size)
        if i == odd:
            x = np.stack([x, 0.5 * x], axis=1)
        sf.write(root / f"{name}{i}.wav", x.astype(np.float32), rate)
    return root
