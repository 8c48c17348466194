"""Model geometry (``ModelConfig``), its named presets and the windowing of long audio.

``InferenceConfig`` holds the windowing and decoding defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lincae_core.config._base import from_dict
from lincae_core.config.geometry import Geometry
from lincae_core.errors import ConfigError

__all__ = [
    "AUTO_BATCH",
    "AUTO_BATCH_AUDIO_S",
    "AUTO_BATCH_CANDIDATES",
    "AUTO_BATCH_PROBE_SHARE",
    "PRESETS",
    "InferenceConfig",
    "ModelConfig",
    "get_preset",
]

# ``batch_size="auto"`` (the encode default): the batch size is chosen per device and window length.
AUTO_BATCH = "auto"
# The rule (docs/encoding.md, "Batch size"): forward passes of about this much audio. On CPU the
# encoder's cost per window is lowest for batches of ~16 s of audio (2 windows of 10 s, 4 of 4 s,
# 32 of 0.5 s; larger batches spill the caches, smaller ones pay per-call overhead); on CUDA
# larger batches keep the GPU busy. "cpu-parallel": per pass when the CPU encode runs one pass per
# core at once (the default, docs/encoding.md "Parallel passes"): measured with 2 passes on the
# project's 2-core machine, 1 window of 10 s and 2 clips of 4 s a pass beat 2 and 4 by 12-15%.
AUTO_BATCH_AUDIO_S = {"cpu": 16.0, "cpu-parallel": 8.0, "cuda": 320.0}
# What the timed probe tries (those up to 2x the rule), and the most of a job's forward work it
# may cost: smaller jobs use the rule (the probe would cost more than it can save).
AUTO_BATCH_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128)
AUTO_BATCH_PROBE_SHARE = 0.05


@dataclass(frozen=True)
class ModelConfig:
    """Geometry and architecture of a Lin-CAE / Music2Latent consistency autoencoder.

    Field names follow the reference U-Net (method.md section 2); the defaults are the
    ``paper`` preset (58.2 M parameters, 44.1 kHz, 4096 samples per latent frame).
    """

    name: str = "paper"
    # --- front end (method.md section 1) ---
    sample_rate: int = 44100
    hop: int = 512
    n_fft_factor: int = 4
    alpha: float = 0.65
    beta: float = 0.34
    # --- U-Net (method.md section 2) ---
    base_channels: int = 64
    multipliers: tuple[int, ...] = (1, 2, 4, 4, 4)
    layers: tuple[int, ...] = (2, 2, 2, 2, 2)
    attention: tuple[int, ...] = (0, 0, 1, 1, 1)
    encoder_layers: tuple[int, ...] = (1, 1, 1, 1, 1)
    encoder_attention: tuple[int, ...] = (0, 0, 1, 1, 1)
    freq_downsample: tuple[int, ...] = (1, 0, 0, 0)
    bottleneck_base_channels: int = 512
    num_bottleneck_layers: int = 4
    latent_dim: int = 64
    cond_channels: int = 256
    heads: int = 4
    frequency_scaling: bool = True
    pre_normalize_2d_to_1d: bool = True
    pre_normalize_downsampling_encoder: bool = True
    # --- consistency model (method.md sections 2-4) ---
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    data_channels: int = field(default=2, repr=False)  # real/imag planes, not stereo

    def __post_init__(self) -> None:
        levels = len(self.multipliers)
        for name in ("layers", "attention", "encoder_layers", "encoder_attention"):
            if len(getattr(self, name)) != levels:
                raise ConfigError(
                    f"Expected {name} to have {levels} entries (one per level, like multipliers). "
                    f"Got {len(getattr(self, name))} instead."
                )
        if len(self.freq_downsample) != levels - 1:
            raise ConfigError(
                f"Expected freq_downsample to have {levels - 1} entries. "
                f"Got {len(self.freq_downsample)} instead."
            )
        if any(v not in (0, 1) for v in self.freq_downsample + self.attention):
            raise ConfigError("Expected freq_downsample and attention entries to be 0 or 1.")
        for name in ("sample_rate", "hop", "base_channels", "latent_dim", "cond_channels"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"Expected {name} > 0. Got {getattr(self, name)} instead.")
        if self.freq_bins % (4 ** self.freq_downsample.count(1) * self.time_downsample) != 0:
            raise ConfigError(f"hop {self.hop} does not divide evenly through the frequency pyramid.")
        if self.cond_channels % 2 or self.data_channels != 2:
            raise ConfigError("Expected an even cond_channels and data_channels == 2.")
        for level, mult in enumerate(self.multipliers):
            ch = self.base_channels * mult
            if ch % 4 or (self.attention[level] or self.encoder_attention[level]) and ch % self.heads:
                raise ConfigError(f"Level {level} has {ch} channels: not divisible by 4 / heads.")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError("Expected 0 < sigma_min < sigma_max.")

    # --- derived geometry ---
    @property
    def n_fft(self) -> int:
        """STFT window length (= 4 hops)."""
        return self.hop * self.n_fft_factor

    @property
    def freq_bins(self) -> int:
        """Frequency bins kept by the front end (0 .. 2*hop-1; Nyquist dropped)."""
        return 2 * self.hop

    @property
    def time_downsample(self) -> int:
        """STFT frames per latent frame (2 per time-and-frequency downsampling stage)."""
        return 2 ** self.freq_downsample.count(0)

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per latent frame (4096 for the paper preset)."""
        return self.hop * self.time_downsample

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (10.77 Hz for the paper preset)."""
        return self.sample_rate / self.samples_per_frame

    @property
    def latent_freq_dim(self) -> int:
        """Frequency rows at the bottom of the 2-D pyramid (32 for the paper preset)."""
        return self.freq_bins // (4 ** self.freq_downsample.count(1)) // (2 ** self.freq_downsample.count(0))

    def geometry(self) -> Geometry:
        """Return the geometry that a latent store must share with its model."""
        return Geometry(self.sample_rate, self.samples_per_frame, self.latent_dim)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict as written by ``to_dict``; unknown keys are an error."""
        return from_dict(cls, data, "model config")

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class InferenceConfig:
    """Windowing of long-audio encode/decode (bounded memory) and decoding defaults.

    Windows are counted in latent frames; consecutive windows overlap and are cross-faded
    (linearly, latents on encode and audio on decode). Defaults chosen by measurement of
    reconstruction SNR/MSS against window length (docs/windowing.md).
    """

    window_s: float = 10.0
    overlap_s: float = 1.0
    batch_size: int | str = 8  # or AUTO_BATCH ("auto": chosen per device and window, encode only)
    steps: int | None = None  # None: the model's recommended steps (LinCAE.recommended_steps)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.overlap_s < 0 or self.overlap_s >= self.window_s:
            raise ConfigError(
                f"Expected window_s > 0 and 0 <= overlap_s < window_s. "
                f"Got window_s={self.window_s}, overlap_s={self.overlap_s} instead."
            )
        auto = self.batch_size == AUTO_BATCH
        if (not auto and (not isinstance(self.batch_size, int) or self.batch_size < 1)) or (
            self.steps is not None and self.steps < 1
        ):
            raise ConfigError(
                f"Expected batch_size >= 1 or 'auto' and steps >= 1 (or None). Got "
                f"batch_size={self.batch_size!r}, steps={self.steps!r} instead."
            )

    @property
    def auto_batch(self) -> bool:
        """Whether the batch size is chosen per device (``batch_size="auto"``)."""
        return self.batch_size == AUTO_BATCH

    def fixed_batch(self, default: int = 8) -> int:
        """The batch size as an integer (``default`` for ``"auto"``, which only encoding resolves)."""
        return default if self.batch_size == AUTO_BATCH else int(self.batch_size)

    @classmethod
    def for_window(
        cls, window_s: float | None = None, overlap_s: float | None = None, **other: Any
    ) -> InferenceConfig:
        """Build from a window (default 10 s) with the default overlap rule.

        The overlap is the default 1 s, but at most half the window, unless given.
        """
        window = cls.window_s if window_s is None else window_s
        overlap = min(cls.overlap_s, window / 2) if overlap_s is None else overlap_s
        return cls(window_s=window, overlap_s=overlap, **{k: v for k, v in other.items() if v is not None})

    def frames(self, cfg: ModelConfig) -> tuple[int, int]:
        """Return (window, overlap) in latent frames of ``cfg`` (window >= 2, 1 <= overlap <= W/2)."""
        window = max(round(self.window_s * cfg.frame_rate), 2)
        overlap = min(max(round(self.overlap_s * cfg.frame_rate), 1), window // 2)
        return window, overlap

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceConfig:
        """Build from a dict; unknown keys are an error."""
        return from_dict(cls, data, "inference config")


# CPU presets: 16 kHz, hop 256 (2048 samples per latent frame, 7.8 Hz), no attention, narrow.
# Sized by measurement on the project's 2-core machines (docs/presets.md, scripts/bench_presets.py).
_CPU_COMMON: dict[str, Any] = dict(
    sample_rate=16000,
    hop=256,
    attention=(0, 0, 0, 0, 0),
    encoder_attention=(0, 0, 0, 0, 0),
    heads=4,
)

PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "small": ModelConfig(
        name="small",
        base_channels=16,
        layers=(1, 1, 1, 1, 1),
        bottleneck_base_channels=256,
        num_bottleneck_layers=2,
        cond_channels=128,
        **_CPU_COMMON,
    ),
    "tiny": ModelConfig(
        name="tiny",
        base_channels=8,
        layers=(1, 1, 1, 1, 1),
        bottleneck_base_channels=128,
        num_bottleneck_layers=2,
        cond_channels=64,
        **_CPU_COMMON,
    ),
}


def get_preset(name: str) -> ModelConfig:
    """Return a named model preset."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"Unknown preset {name!r}. Expected one of {sorted(PRESETS)}.") from None
