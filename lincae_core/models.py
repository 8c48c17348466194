"""Any ``-c`` value to a loaded model: a checkpoint directory, ``default`` (the embedded model), or
a released model's name (``lin-cae``, ``lin-cae-2``, ``m2l``, ``hf:REPO[@REVISION]/PATH``: fetched,
converted and cached on first use by :mod:`lincae_core.hub`); and the model a store names."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from lincae_core.checkpoint import load_checkpoint
from lincae_core.hub import cached_checkpoint, is_model_name, resolve_checkpoint
from lincae_core.nn.model import LinCAE
from lincae_core.store import LatentStore

__all__ = ["load_model", "recorded_model"]


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu", verify: bool = True
) -> LinCAE:
    """Load what ``-c`` names, in eval mode (the embedded default when ``path`` is None).

    A directory holding a ``config.json`` is a checkpoint first, whatever its name; otherwise a
    released model's name is resolved to its cached checkpoint, downloading and converting it on
    first use (:func:`lincae_core.hub.resolve_checkpoint`). The returned model has its
    ``model_id`` and ``card`` set; with ``verify`` the model id is recomputed from the weights and
    must match the card.
    """
    if path is not None and not (Path(path) / "config.json").is_file() and is_model_name(str(path)):
        path = resolve_checkpoint(str(path))
    return load_checkpoint(path, device, verify)


def recorded_model(store: str | os.PathLike[str]) -> str | None:
    """The model name a store was encoded with (``encode -c lin-cae``), when that name is cached
    with the store's model id; None otherwise (a path, the default model, not cached)."""
    s = LatentStore.open(store)
    encode: dict[str, Any] = next((e for e in s.lineage if e.get("op") == "encode"), {})
    name = (encode.get("args") or {}).get("checkpoint")
    if not isinstance(name, str) or not is_model_name(name):
        return None
    path = cached_checkpoint(name)
    if path is None:
        return None
    try:
        card = json.loads((path / "model_card.json").read_text())
    except (OSError, ValueError):
        return None
    return name if card.get("model_id") == s.model_id else None
