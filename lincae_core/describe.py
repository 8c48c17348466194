"""Describe an artifact (a checkpoint directory or a latent store) as a JSON-ready dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lincae_core.checkpoint import DEFAULT_MODEL_DIR, load_model

__all__ = ["describe_checkpoint", "describe_path"]


def describe_checkpoint(path: str | Path | None = None) -> dict[str, Any]:
    """Config, derived geometry, parameter counts, model id and model card of a checkpoint."""
    model = load_model(path)
    cfg = model.config
    params = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("encoder", "decoder")
    }
    total = sum(p.numel() for p in model.parameters())
    params["denoiser"] = total - params["encoder"] - params["decoder"]
    params["total"] = total
    return {
        "kind": "checkpoint",
        "path": str(path) if path is not None else f"(embedded default) {DEFAULT_MODEL_DIR}",
        "model_id": model.model_id,
        "preset": cfg.name,
        "geometry": {
            **cfg.geometry(),
            "hop": cfg.hop,
            "n_fft": cfg.n_fft,
            "compression": cfg.samples_per_frame / cfg.latent_dim,
        },
        "parameters": params,
        "config": cfg.to_dict(),
        "model_card": model.card,
    }


def describe_path(path: str | Path | None) -> dict[str, Any]:
    """Describe a checkpoint directory or a latent store (detected by its metadata files)."""
    if path is None:
        return describe_checkpoint(None)
    p = Path(path)
    if (p / "config.json").is_file() and (p / "model.safetensors").exists():
        return describe_checkpoint(p)
    from lincae_core.store import LatentStore

    store = LatentStore.open(p)
    return {"kind": "store", "path": str(p), **store.describe()}
