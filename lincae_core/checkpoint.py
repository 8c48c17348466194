"""Checkpoints: ``model.safetensors`` + ``config.json`` + ``model_card.json``, with a SHA-256 id.

A checkpoint directory is self-describing: ``config.json`` holds the format name and version
and the model config; ``model_card.json`` holds the model id, provenance, training summary and
measured metrics. The model id is a SHA-256 over the canonical config JSON and every tensor
(name, dtype, shape, bytes), checked on load so that a checkpoint cannot claim to be another.
Released Music2Latent / Lin-CAE ``.pt``/``.pth`` files are converted into checkpoints by
:mod:`lincae_core.release`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lincae_core._version import __version__
from lincae_core.config import ModelConfig, get_preset
from lincae_core.device import resolve_device
from lincae_core.errors import CheckpointError, ConfigError
from lincae_core.nn.model import LinCAE
from lincae_core.publish import atomic_path, write_text_atomic

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "DEFAULT_MODEL_DIR",
    "check_keys",
    "load_checkpoint",
    "load_checkpoint_info",
    "model_id",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "lincae-checkpoint"
CHECKPOINT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
FALLBACK_PRESET = "tiny"


def model_id(state: dict[str, torch.Tensor], cfg: ModelConfig) -> str:
    """SHA-256 over the canonical config JSON and every tensor (name, dtype, shape, bytes)."""
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        # clone(contiguous_format) also normalises size-1 strides left by channels_last
        flat = t.clone(memory_format=torch.contiguous_format).reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    model: LinCAE | dict[str, torch.Tensor],
    out_dir: str | Path,
    cfg: ModelConfig | None = None,
    card: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint directory and return its model id.

    Args:
        model: a ``LinCAE`` or a state dict (then ``cfg`` is required).
        out_dir: directory to create or update (files are replaced atomically).
        cfg: model config (defaults to ``model.config``).
        card: extra model-card fields (provenance, training, metrics).
    """
    if isinstance(model, LinCAE):
        cfg = cfg or model.config
        state = {
            k: v.detach().cpu().float().clone(memory_format=torch.contiguous_format)
            for k, v in model.state_dict().items()
        }
    else:
        state = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in model.items()}
    if cfg is None:
        raise ConfigError("save_checkpoint needs cfg when given a state dict.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mid = model_id(state, cfg)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "model_id": mid})
    config = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "model": cfg.to_dict()}
    write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    full_card = {
        "model_id": mid,
        "lincae_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "preset": cfg.name,
        "parameters": sum(int(v.numel()) for v in state.values()),
        **(card or {}),
    }
    write_text_atomic(out / "model_card.json", json.dumps(full_card, indent=2) + "\n")
    return mid


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent} is not a lincae checkpoint: {path.name} is missing.") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"Expected a JSON object in {path}.")
    return data


def load_checkpoint_info(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Read and validate a checkpoint's ``config.json`` and ``model_card.json``."""
    p = Path(path)
    if not p.is_dir():
        raise CheckpointError(
            f"{p} is not a checkpoint directory (expected model.safetensors + config.json)."
        )
    config = _read_json(p / "config.json")
    if config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not a lincae checkpoint (format={config.get('format')!r}).")
    if config.get("format_version") not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"{p} has checkpoint format version {config.get('format_version')!r}; "
            f"this lincae reads {list(SUPPORTED_VERSIONS)}."
        )
    try:
        cfg = ModelConfig.from_dict(config.get("model", {}))
    except ConfigError as exc:
        raise CheckpointError(f"{p}/config.json: {exc}") from exc
    card = _read_json(p / "model_card.json") if (p / "model_card.json").exists() else {}
    return cfg, card


def _fallback_model() -> LinCAE:
    """A freshly initialised, seeded model used until a trained default ships."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LinCAE(get_preset(FALLBACK_PRESET))
    model.model_id = model_id(model.state_dict(), model.config)
    model.card = {"model_id": model.model_id, "untrained": True, "preset": FALLBACK_PRESET}
    return model


def load_checkpoint(
    path: str | Path | None = None, device: str | torch.device = "cpu", verify: bool = True
) -> LinCAE:
    """Load a checkpoint directory (the embedded default when ``path`` is None or ``"default"``)
    in eval mode. Released models by name: :func:`lincae_core.models.load_model`.

    The returned model has its ``model_id`` and ``card`` fields set. With ``verify`` the model id
    is recomputed from the weights and must match the card.
    """
    device = resolve_device(device)
    if path is None or str(path) == "default":
        if not (DEFAULT_MODEL_DIR / "model.safetensors").exists():
            log.warning(
                "No trained default model ships with this lincae yet: using a freshly initialised "
                "'%s' model (outputs are not meaningful audio).",
                FALLBACK_PRESET,
            )
            return _fallback_model().to(device).eval()
        path = DEFAULT_MODEL_DIR
    p = Path(path)
    cfg, card = load_checkpoint_info(p)
    try:
        state = load_file(str(p / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read {p / 'model.safetensors'}: {exc}") from exc
    model = LinCAE(cfg)
    check_keys(state, model.state_dict(), str(p))
    model.load_state_dict(state, strict=True)
    mid = model_id(state, cfg)
    if verify and card.get("model_id") not in (None, mid):
        raise CheckpointError(
            f"{p}: weights do not match the model card (card model_id {card['model_id'][:12]}..., "
            f"weights hash to {mid[:12]}...)."
        )
    model.model_id = mid
    model.card = card
    return model.to(device).eval()


def check_keys(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], src: str) -> None:
    """Strict key and shape check: any missing, unexpected or mis-shaped tensor is an error."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{src}: missing key {missing[0]!r} ({len(missing)} missing in all).")
    if unexpected:
        raise CheckpointError(f"{src}: unknown key {unexpected[0]!r} ({len(unexpected)} unknown in all).")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{src}: key {k!r} has shape {tuple(state[k].shape)}; expected {tuple(v.shape)}."
            )
