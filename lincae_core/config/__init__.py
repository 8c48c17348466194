"""The single home of lincae's defaults: frozen, validated config dataclasses and named presets.

Every artifact embeds its config as JSON (``to_dict``), so a checkpoint or a latent store
describes itself; ``from_dict`` rejects unknown keys so that a typo never passes silently.

- ``model``: ``ModelConfig`` (geometry; presets ``paper``, ``small``, ``tiny``) and
  ``InferenceConfig`` (windowing of long audio);
- ``train``: ``TrainConfig`` (``lincae train``);
- ``evaluation``: ``EvalConfig`` and ``GainDistribution`` (``lincae eval``).
"""

from lincae_core.config._base import load_json_config
from lincae_core.config.evaluation import EvalConfig, GainDistribution
from lincae_core.config.model import (
    AUTO_BATCH,
    AUTO_BATCH_AUDIO_S,
    AUTO_BATCH_CANDIDATES,
    AUTO_BATCH_PROBE_SHARE,
    PRESETS,
    InferenceConfig,
    ModelConfig,
    get_preset,
)
from lincae_core.config.train import CPU_RECIPE, TrainConfig, preset_defaults

__all__ = [
    "AUTO_BATCH",
    "AUTO_BATCH_AUDIO_S",
    "AUTO_BATCH_CANDIDATES",
    "AUTO_BATCH_PROBE_SHARE",
    "CPU_RECIPE",
    "preset_defaults",
    "PRESETS",
    "EvalConfig",
    "GainDistribution",
    "InferenceConfig",
    "ModelConfig",
    "TrainConfig",
    "get_preset",
    "load_json_config",
]
