"""Training settings (``TrainConfig``): objective, schedule, augmentations, data and run control."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lincae_core.config._base import from_dict
from lincae_core.config.model import ModelConfig, get_preset
from lincae_core.errors import ConfigError

__all__ = ["CPU_RECIPE", "MAX_GAIN_RANGE", "TrainConfig", "preset_defaults", "trained_gain_range"]

#: The widest homogeneity gain range, ``[1 − C, 1 + 2 C]`` at C = 1 (arXiv:2510.23530 Sec. 3.3;
#: ``train.augment.gain_range`` anneals C from 1 down to 0, so every run sees gains in it).
MAX_GAIN_RANGE = (0.0, 3.0)


def trained_gain_range(config: dict) -> tuple[float, float]:
    """The gains a run with this ``TrainConfig`` dict trains on: :data:`MAX_GAIN_RANGE` with
    homogeneity training, only gain 1 without it (written into every model card as data)."""
    if not config.get("homogeneity", True) or float(config.get("gain_prob", 0.8)) <= 0:
        return (1.0, 1.0)
    return MAX_GAIN_RANGE


@dataclass(frozen=True)
class TrainConfig:
    """Consistency training of a Lin-CAE (arXiv:2510.23530, Sec. 3.3; method.md section 3).

    Defaults follow the reference code where it and the paper disagree (docs/training.md lists
    every disagreement and the option that selects the other reading). ``model`` holds
    ``ModelConfig`` overrides applied on top of the named ``preset``; ``data`` holds
    ``PATH[:WEIGHT]`` source specs. ``warmup_steps=None`` means the paper's ratio, 10k of 800k
    (``total_steps // 80``); ``mixit=None`` turns the Music2Latent mixit augmentation on exactly
    for the baseline (no additivity and no homogeneity), and ``baseline_mixtures=None`` likewise
    appends B convex mixtures that the encoder encodes itself (the official ``m2l`` configuration:
    the baseline sees 2B items per step, like Lin-CAE).
    """

    # --- model and data ---
    preset: str = "paper"
    model: dict[str, Any] | None = None
    data: tuple[str, ...] = ()
    valid: str | None = None
    segment_frames: int = 64
    silence_rms: float = 1e-3
    # --- schedule and optimiser (RAdam, linear warm-up, cosine decay) ---
    total_steps: int = 800_000
    batch_size: int = 20
    lr: float = 1e-4
    lr_min: float = 1e-6
    warmup_steps: int | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    # --- consistency objective ---
    end_exp: float = 2.0
    base_dt: float = 0.1
    p_mean: float = -1.1
    p_std: float = 2.0
    huber_c: float | None = None
    # --- EMA ---
    ema_decay: float = 0.9999
    ema_every: int = 10
    # --- Lin-CAE augmentations (Sec. 3.2) ---
    additivity: bool = True
    homogeneity: bool = True
    mix_weights: str = "convex"
    anneal: bool = True
    gain_prob: float = 0.8
    mixit: bool | None = None
    mixit_prob: float = 0.5
    baseline_mixtures: bool | None = None
    # --- run control ---
    seed: int = 0
    checkpoint_every: int = 1000
    valid_every: int = 1000
    valid_items: int = 8
    log_every: int = 10
    device: str = "auto"
    mixed_precision: bool = True
    cuda_autocast: str = "float16"  # dtype of mixed precision on CUDA: float16 (+ GradScaler) or bfloat16
    tf32: bool = False  # CUDA: TF32 matmuls and convolutions (Ampere and later)
    cpu_bf16: bool = False
    channels_last: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        positive = (
            "segment_frames",
            "total_steps",
            "batch_size",
            "ema_every",
            "checkpoint_every",
            "valid_every",
            "valid_items",
            "log_every",
        )
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"Expected {name} > 0. Got {getattr(self, name)} instead.")
        if self.cuda_autocast not in ("float16", "bfloat16"):
            raise ConfigError(
                f"Expected cuda_autocast 'float16' or 'bfloat16'. Got {self.cuda_autocast!r} instead."
            )
        if self.mix_weights not in ("convex", "sum"):
            raise ConfigError(f"Expected mix_weights 'convex' or 'sum'. Got {self.mix_weights!r} instead.")
        if self.additivity and self.batch_size < 2:
            raise ConfigError("Expected batch_size >= 2 with additivity (mixtures pair distinct items).")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.total_steps:
            raise ConfigError(
                f"Expected 0 <= warmup_steps < total_steps. Got {self.warmup_steps} of {self.total_steps}."
            )
        if not 0 < self.lr_min <= self.lr or not 0 <= self.ema_decay < 1 or self.end_exp < 1:
            raise ConfigError("Expected 0 < lr_min <= lr, 0 <= ema_decay < 1 and end_exp >= 1.")
        if not (0 <= self.gain_prob <= 1 and 0 <= self.mixit_prob <= 1) or len(self.betas) != 2:
            raise ConfigError("Expected gain_prob and mixit_prob in [0, 1] and two betas.")
        if self.threads is not None and self.threads <= 0:
            raise ConfigError(f"Expected threads > 0. Got {self.threads} instead.")
        if self.model is not None and not isinstance(self.model, dict):
            raise ConfigError(f"Expected model overrides as a JSON object. Got {self.model!r} instead.")

    @property
    def warmup(self) -> int:
        """Warm-up steps: the explicit value, or the paper's 10k-of-800k ratio."""
        return self.total_steps // 80 if self.warmup_steps is None else self.warmup_steps

    @property
    def use_baseline_mixtures(self) -> bool:
        """Whether B convex mixtures are appended and encoded as they are (the official Music2Latent
        baseline, method.md §3.1; auto: only for the baseline, which has no additivity)."""
        if self.additivity:
            return False
        if self.baseline_mixtures is None:
            return not self.homogeneity
        return self.baseline_mixtures

    @property
    def use_mixit(self) -> bool:
        """Whether the Music2Latent mixit augmentation is on (auto: only for the baseline)."""
        if self.mixit is None:
            return not (self.additivity or self.homogeneity)
        return self.mixit

    def model_config(self) -> ModelConfig:
        """Return the preset with the ``model`` overrides applied (validated)."""
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in (self.model or {}).items()}
        try:
            return get_preset(self.preset).replace(**overrides)
        except TypeError as exc:
            raise ConfigError(f"Invalid model override: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict as written by ``to_dict``; unknown keys are an error."""
        return from_dict(cls, data, "train config")

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# The CPU recipe: what a new run of a CPU preset (tiny, small) trains with unless told otherwise.
# The paper's GPU settings (20 crops of 64 STFT frames, no channels_last) cost 8.8 s a step on the
# project's 2-core machine against 0.39 s for this recipe. end_exp 3 (Δt shrinks faster, reaching
# 0.01 while half the LR is left) gave a 1-step eval MSS of 2.63 against 4.43 for end_exp 2 in
# equal 1500-step runs (docs/training-recipe.md).
CPU_RECIPE: dict[str, Any] = {
    "end_exp": 3.0,
    "batch_size": 8,
    "segment_frames": 32,
    "lr": 2e-4,
    "channels_last": True,
    "checkpoint_every": 200,
    "valid_every": 1000,
}


def preset_defaults(preset: str) -> dict[str, Any]:
    """The training defaults of a preset: the CPU recipe for ``tiny``/``small``, else the paper's."""
    return dict(CPU_RECIPE) if preset in ("tiny", "small") else {}
