"""lincae: latent audio datasets with a linear consistency autoencoder (Lin-CAE, arXiv:2510.23530).

The public names are re-exported lazily (importing ``lincae_core`` alone loads nothing heavy); the
command line imports only these. The package map is in the README ("Package map").
"""

from __future__ import annotations

import importlib
from typing import Any

from lincae_core._version import __version__

_EXPORTS = {
    # configuration and errors
    "ModelConfig": "lincae_core.config",
    "InferenceConfig": "lincae_core.config",
    "TrainConfig": "lincae_core.config",
    "EvalConfig": "lincae_core.config",
    "get_preset": "lincae_core.config",
    "load_json_config": "lincae_core.config",
    "LincaeError": "lincae_core.errors",
    "resolve_device": "lincae_core.device",
    # the model and its checkpoints
    "LinCAE": "lincae_core.nn.model",
    "load_model": "lincae_core.models",
    "save_checkpoint": "lincae_core.checkpoint",
    "import_weights": "lincae_core.release",
    "resolve_checkpoint": "lincae_core.hub",
    "is_model_name": "lincae_core.hub",
    "recorded_model": "lincae_core.models",
    "list_models": "lincae_core.catalog",
    # arrays of audio <-> latents
    "encode": "lincae_core.inference",
    "decode": "lincae_core.inference",
    "iter_decode": "lincae_core.inference",
    # libraries -> stores -> audio
    "discover": "lincae_core.discovery",
    "parse_extensions": "lincae_core.discovery",
    "read_file_list": "lincae_core.discovery",
    "EncodeSettings": "lincae_core.encoding.settings",
    "AUTOCAST_CHOICES": "lincae_core.encoding.settings",
    "encode_args": "lincae_core.encoding.identity",
    "encode_files": "lincae_core.encoding.job",
    "plan_encode": "lincae_core.encoding.plan",
    "shard_from_env": "lincae_core.encoding.settings",
    "decode_store": "lincae_core.decoding",
    "decode_to_wav_stream": "lincae_core.decoding",
    "LatentStore": "lincae_core.store",
    "STATUS_NAMES": "lincae_core.store.layout",
    "describe_path": "lincae_core.describe",
    "list_tracks": "lincae_core.store.listing",
    # latent operations
    "gain": "lincae_core.ops",
    "mix": "lincae_core.ops",
    "extract": "lincae_core.ops",
    "db_to_amplitude": "lincae_core.ops",
    "gain_store": "lincae_core.ops",
    "mix_stores": "lincae_core.ops",
    "extract_store": "lincae_core.ops",
    "select_store": "lincae_core.ops",
    "RANDOM_GAIN_RANGE": "lincae_core.ops",
    "operation_warnings": "lincae_core.ops",
    "pan_store": "lincae_core.ops",
    "midside_store": "lincae_core.ops",
    "concat_store": "lincae_core.ops",
    "extract_stems": "lincae_core.ops",
    "parse_concat_list": "lincae_core.ops",
    "export_shards": "lincae_core.ops",
    "stats_store": "lincae_core.ops",
    # training on the latents
    "LatentWindows": "lincae_core.data",
    "LatentMixtures": "lincae_core.data",
    # training, evaluation, demo
    "train_model": "lincae_core.train.loop:train",  # `train` is the sub-package
    "resolve_train_config": "lincae_core.train.state",
    "evaluate": "lincae_core.evaluation.runner",
    "load_named_models": "lincae_core.evaluation.runner",
    "summary_tables": "lincae_core.evaluation.report",
    "write_report": "lincae_core.evaluation.report",
    "measure_checkpoint": "lincae_core.evaluation.card",
    "run_demo": "lincae_core.demo",
    # how far the latent operations can be trusted (model card thresholds)
    "linearity_warnings": "lincae_core.linearity",
    "linearity_verdict": "lincae_core.linearity",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, _, attr = _EXPORTS[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    raise AttributeError(f"module 'lincae_core' has no attribute {name!r}")
