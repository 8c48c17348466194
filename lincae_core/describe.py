"""Describe an artifact (a checkpoint directory or a latent store) as a JSON-ready dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lincae_core.linearity import card_figures, linearity_verdict
from lincae_core.location import as_location
from lincae_core.store.local_view import open_view

__all__ = ["describe_checkpoint", "describe_path", "measured_summary"]


def _r2(v: Any) -> float | None:
    return None if v is None else round(float(v), 2)


def measured_summary(card: dict[str, Any], model_id: str | None = None) -> dict[str, Any] | str:
    """A short summary of the card's ``measured`` block (``lincae card``), or why there is none."""
    measured = card.get("measured")
    figures = card_figures(card)
    if not isinstance(measured, dict) or figures is None:
        return "not measured (run `lincae card CKPT --stems DIR`)"
    data = measured.get("data", {})
    return {
        "on": f"{len(data.get('stem_tracks', []))} stems tracks x first {data.get('max_seconds')} s of "
        f"{data.get('stems_dir')} ({data.get('music_source')} for reconstruction and homogeneity)",
        "date": measured.get("date"),
        "same_weights": model_id is None or measured.get("model_id") == model_id,
        "recon_mss_by_steps": {str(r["steps"]): _r2(r["mss"]) for r in measured.get("reconstruction", [])},
        "recommended_steps": card.get("recommended_steps", measured.get("recommended_steps")),
        **{k: _r2(v) for k, v in figures.items()},
        "separation_si_sdr_mean": _r2((measured.get("separation", {}).get("si_sdr") or {}).get("mean")),
        "origin_ratio": _r2((measured.get("origin") or {}).get("ratio")),
        "verdict": linearity_verdict("this model", figures),
    }


def describe_checkpoint(path: str | Path | None = None) -> dict[str, Any]:
    """Config, derived geometry, parameter counts, model id and model card of a checkpoint."""
    from lincae_core.checkpoint import DEFAULT_MODEL_DIR  # torch only where a model is described
    from lincae_core.models import load_model

    model = load_model(path)
    cfg = model.config
    params = {
        name: sum(p.numel() for p in getattr(model, name).parameters()) for name in ("encoder", "decoder")
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
            **cfg.geometry().to_dict(),
            "hop": cfg.hop,
            "n_fft": cfg.n_fft,
            "compression": cfg.samples_per_frame / cfg.latent_dim,
        },
        "parameters": params,
        "config": cfg.to_dict(),
        "measured": measured_summary(model.card, model.model_id),
        "model_card": model.card,
    }


def describe_path(path: str | Path | None) -> dict[str, Any]:
    """Describe a checkpoint directory, a latent store (detected by its metadata files) or a
    released model by name (fetched and cached on first use)."""
    if path is None:
        return describe_checkpoint(None)
    p = as_location(path)
    if isinstance(p, Path) and not p.exists():  # a released model's name? (model code loads here only)
        from lincae_core.hub import resolve_if_released

        p = resolve_if_released(p)
    if isinstance(p, Path) and (p / "config.json").is_file() and (p / "model.safetensors").exists():
        return describe_checkpoint(p)
    store = open_view(p)  # zarr-free where it can (lincae_core.store.local_view)
    return {"kind": "store", "path": str(p), **store.describe()}
