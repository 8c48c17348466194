"""Settings of ``lincae eval`` (``EvalConfig``) and the homogeneity gain distribution."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError

__all__ = ["EvalConfig", "GainDistribution"]


@dataclass(frozen=True)
class GainDistribution:
    """The distribution of the per-track gain ``a`` of the homogeneity tests (Sec. 4.3).

    The paper draws "a random scalar" without saying from what; the default is the reference
    validation code's uniform choice from {0.25, 0.5, 0.75, 1.1}.
    """

    kind: str = "choice"
    values: tuple[float, ...] = (0.25, 0.5, 0.75, 1.1)

    def __post_init__(self) -> None:
        if self.kind not in ("choice", "uniform"):
            raise ConfigError(f"Expected gain distribution 'choice' or 'uniform'. Got {self.kind!r} instead.")
        if not self.values or (self.kind == "uniform" and len(self.values) != 2):
            raise ConfigError(f"Expected choice values or uniform LO, HI. Got {self.values} instead.")
        if self.kind == "uniform" and not self.values[0] < self.values[1]:
            raise ConfigError(f"Expected uniform LO < HI. Got {self.values} instead.")

    @classmethod
    def parse(cls, spec: str) -> GainDistribution:
        """Parse ``choice:0.25,0.5,0.75,1.1`` or ``uniform:LO:HI``."""
        kind, _, rest = spec.partition(":")
        try:
            if kind == "uniform":
                values = tuple(float(v) for v in rest.split(":"))
            elif kind == "choice":
                values = tuple(float(v) for v in rest.split(","))
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"Expected a gain distribution 'choice:A,B,...' or 'uniform:LO:HI'. Got {spec!r} instead."
            ) from None
        return cls(kind, values)

    @property
    def spec(self) -> str:
        """The ``parse`` string of this distribution."""
        if self.kind == "uniform":
            return f"uniform:{self.values[0]:g}:{self.values[1]:g}"
        return "choice:" + ",".join(f"{v:g}" for v in self.values)

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        """Draw ``n`` gains, one per track, in track order."""
        if self.kind == "uniform":
            return [float(a) for a in rng.uniform(self.values[0], self.values[1], size=n)]
        return [float(self.values[i]) for i in rng.integers(0, len(self.values), size=n)]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "values": list(self.values), "spec": self.spec}


@dataclass(frozen=True)
class EvalConfig:
    """Settings of ``lincae eval``; the defaults are the paper's protocol (Sec. 4.2-4.5)."""

    chunk_s: float = 2.0
    overlap_s: float = 0.5
    steps: int | None = None  # None: each checkpoint's recommended steps (1 if it has none)
    seed: int = 0
    gain_dist: str = "choice:0.25,0.5,0.75,1.1"
    max_tracks: int | None = None
    max_seconds: float | None = None
    batch_size: int = 16
    example_seconds: float | None = 10.0  # audio of the example track kept for the report
    noise: str = "both"  # decode noise settings reported: "both" (shared and independent) or "shared"

    def __post_init__(self) -> None:
        if self.chunk_s <= 0 or not 0 <= self.overlap_s < self.chunk_s:
            raise ConfigError(
                "Expected chunk_s > 0 and 0 <= overlap_s < chunk_s. "
                f"Got chunk_s={self.chunk_s}, overlap_s={self.overlap_s} instead."
            )
        if (self.steps is not None and self.steps < 1) or self.batch_size < 1:
            raise ConfigError(
                f"Expected steps >= 1 and batch_size >= 1. Got {self.steps} and {self.batch_size} instead."
            )
        if self.max_tracks is not None and self.max_tracks < 1:
            raise ConfigError(f"Expected max_tracks >= 1. Got {self.max_tracks} instead.")
        for name in ("max_seconds", "example_seconds"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"Expected {name} > 0 or None. Got {getattr(self, name)} instead.")
        GainDistribution.parse(self.gain_dist)
        if self.noise not in ("both", "shared"):
            raise ConfigError(f"Expected noise 'both' or 'shared'. Got {self.noise!r} instead.")

    @property
    def gains(self) -> GainDistribution:
        """The parsed gain distribution."""
        return GainDistribution.parse(self.gain_dist)

    def chunk_samples(self, sample_rate: int) -> tuple[int, int]:
        """Return (chunk, overlap) in samples, e.g. (88200, 22050) at 44.1 kHz."""
        return round(self.chunk_s * sample_rate), round(self.overlap_s * sample_rate)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)
