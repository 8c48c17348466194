"""The audio ↔ latent geometry of a model: the one type (``ModelConfig.geometry()`` returns it,
every store records its ``to_dict()`` form in the ``geometry`` attribute)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lincae_core.errors import StoreFormatError

__all__ = ["MAX_LATENT_DIM", "MAX_SAMPLE_RATE", "MAX_SAMPLES_PER_FRAME", "Geometry", "checked_int"]

# Sanity bounds: a geometry beyond them is treated as a corrupt or malicious store.
MAX_SAMPLE_RATE = 1_000_000
MAX_SAMPLES_PER_FRAME = 2**20
MAX_LATENT_DIM = 2**16


def checked_int(v: Any, name: str, lo: int, hi: int) -> int:
    """``v`` if it is an integer (not a bool) in ``[lo, hi]``, else a ``StoreFormatError`` naming it."""
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StoreFormatError(f"{name}: expected an integer in [{lo}, {hi}], got {v!r}")
    return v


@dataclass(frozen=True)
class Geometry:
    """Audio ↔ latent geometry of a model: one latent frame per ``samples_per_frame`` samples."""

    sample_rate: int
    samples_per_frame: int
    latent_dim: int

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.samples_per_frame

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored in the ``geometry`` attribute."""
        return {
            "sample_rate": self.sample_rate,
            "samples_per_frame": self.samples_per_frame,
            "latent_dim": self.latent_dim,
            "frame_rate": self.frame_rate,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "geometry") -> Geometry:
        """Parse and validate a geometry dict (``frame_rate`` is checked, not trusted)."""
        if not isinstance(d, dict):
            raise StoreFormatError(f"{where}: expected a dict, got {type(d).__name__}")
        g = cls(
            sample_rate=checked_int(d.get("sample_rate"), f"{where}.sample_rate", 1, MAX_SAMPLE_RATE),
            samples_per_frame=checked_int(
                d.get("samples_per_frame"), f"{where}.samples_per_frame", 1, MAX_SAMPLES_PER_FRAME
            ),
            latent_dim=checked_int(d.get("latent_dim"), f"{where}.latent_dim", 1, MAX_LATENT_DIM),
        )
        fr = d.get("frame_rate", g.frame_rate)
        if not isinstance(fr, (int, float)) or not math.isclose(fr, g.frame_rate, rel_tol=1e-6):
            raise StoreFormatError(
                f"{where}.frame_rate: expected sample_rate/samples_per_frame = {g.frame_rate}, got {fr!r}"
            )
        return g
