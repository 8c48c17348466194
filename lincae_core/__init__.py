"""lincae: latent audio datasets with a linear consistency autoencoder (Lin-CAE, arXiv:2510.23530).

The public names are re-exported lazily (importing ``lincae_core`` alone loads nothing heavy).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LinCAE": "lincae_core.nn.model",
    "ModelConfig": "lincae_core.config",
    "InferenceConfig": "lincae_core.config",
    "load_model": "lincae_core.checkpoint",
    "save_checkpoint": "lincae_core.checkpoint",
    "import_weights": "lincae_core.checkpoint",
    "encode": "lincae_core.inference",
    "decode": "lincae_core.inference",
    "encode_files": "lincae_core.encoding.job",
    "discover": "lincae_core.discovery",
    "decode_store": "lincae_core.decoding",
    "LatentStore": "lincae_core.store",
    "gain": "lincae_core.ops",
    "mix": "lincae_core.ops",
    "extract": "lincae_core.ops",
    "gain_store": "lincae_core.ops",
    "mix_stores": "lincae_core.ops",
    "extract_store": "lincae_core.ops",
    "select_store": "lincae_core.ops",
    "export_shards": "lincae_core.ops.export",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lincae_core' has no attribute {name!r}")
