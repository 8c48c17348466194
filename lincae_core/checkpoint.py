"""Checkpoints: ``model.safetensors`` + ``config.json`` + ``model_card.json``, with a SHA-256 id.

A checkpoint directory is self-describing: ``config.json`` holds the format name and version
and the model config; ``model_card.json`` holds the model id, provenance, training summary and
measured metrics. The model id is a SHA-256 over the canonical config JSON and every tensor
(name, dtype, shape, bytes), checked on load so that a checkpoint cannot claim to be another.
Released Music2Latent / Lin-CAE ``.pt``/``.pth`` files are converted by ``import_weights``
with ``torch.load(weights_only=True)`` and strict key checks.
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
from lincae_core.nn.transforms import analysis_window
from lincae_core.publish import atomic_path, write_text_atomic

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "DEFAULT_MODEL_DIR",
    "import_weights",
    "load_checkpoint_info",
    "load_model",
    "model_id",
    "reference_kwargs",
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


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu", verify: bool = True
) -> LinCAE:
    """Load a checkpoint directory (the embedded default when ``path`` is None) in eval mode.

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
    _check_keys(state, model.state_dict(), str(p))
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


def reference_kwargs(cfg: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference (linear-cae) ``frontend`` and ``generator`` kwargs equal to ``cfg``.

    These mirror the release's ``frontend_kwargs_*.yaml`` / ``generator_kwargs_*.yaml``
    (method.md section 5): the mapping between the two configurations, in one place.
    """
    frontend = dict(
        hop_size=cfg.hop,
        n_fft_factor=cfg.n_fft_factor,
        alpha_rescale=cfg.alpha,
        beta_rescale=cfg.beta,
        sample_rate=cfg.sample_rate,
    )
    generator = dict(
        base_channels=cfg.base_channels,
        layers_list=list(cfg.layers),
        multipliers_list=list(cfg.multipliers),
        attention_list=list(cfg.attention),
        freq_downsample_list=list(cfg.freq_downsample),
        layers_list_encoder=list(cfg.encoder_layers),
        attention_list_encoder=list(cfg.encoder_attention),
        bottleneck_base_channels=cfg.bottleneck_base_channels,
        bottleneck_channels=cfg.latent_dim,
        num_bottleneck_layers=cfg.num_bottleneck_layers,
        hop=cfg.hop,
        cond_channels=cfg.cond_channels,
        heads=cfg.heads,
        sigma_min=cfg.sigma_min,
        sigma_max=cfg.sigma_max,
        sigma_data=cfg.sigma_data,
        data_channels=cfg.data_channels,
    )
    return frontend, generator


def _check_keys(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], src: str) -> None:
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


def _safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True, allowing only the numpy globals the releases need."""
    import numpy as np

    allowed: list[Any] = [np.dtype, np.ndarray]
    try:
        allowed.append(np._core.multiarray.scalar)  # type: ignore[attr-defined]
        allowed.append(np._core.multiarray._reconstruct)  # type: ignore[attr-defined]
    except AttributeError:  # numpy < 2
        allowed.append(np.core.multiarray.scalar)  # type: ignore[attr-defined]
        allowed.append(np.core.multiarray._reconstruct)  # type: ignore[attr-defined]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file.") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable weights file ({str(exc).splitlines()[0]})") from exc


def _extract_generator_state(obj: Any, src: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Return the U-Net state dict and the detected release format of a loaded file."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: expected a dict of tensors, got {type(obj).__name__}.")
    if "gen_state_dict" in obj:
        return dict(obj["gen_state_dict"]), "music2latent"
    if any(k.startswith("generator.") for k in obj):
        state: dict[str, torch.Tensor] = {}
        for k, v in obj.items():
            if k.startswith("generator."):
                state[k[len("generator.") :]] = v
            elif k == "frontend.window":
                n = v.numel()
                if not torch.allclose(v.float(), analysis_window(n), atol=1e-6):
                    raise CheckpointError(f"{src}: frontend.window is not a periodic Hann window.")
            elif k.startswith("encoder."):  # reference quirk: a second copy of generator.encoder.*
                twin = obj.get("generator." + k)
                if twin is None or not torch.equal(twin, v):
                    raise CheckpointError(f"{src}: unknown key {k!r} (not a copy of generator.{k}).")
            else:
                raise CheckpointError(f"{src}: unknown key {k!r}.")
        return state, "linear-cae"
    raise CheckpointError(
        f"{src}: not a Music2Latent ('gen_state_dict') or Lin-CAE ('generator.*') weights file."
    )


def import_weights(
    src: str | Path, out_dir: str | Path, cfg: ModelConfig | None = None, overwrite: bool = False
) -> str:
    """Convert a released Lin-CAE or Music2Latent weights file into a lincae checkpoint.

    Args:
        src: ``.pth``/``.pt`` file (Lin-CAE ``frontend.window`` + ``generator.*``, or
            Music2Latent ``{'gen_state_dict': ...}``).
        out_dir: checkpoint directory to write.
        cfg: model config of the weights (default: the ``paper`` preset).
        overwrite: replace a checkpoint already in ``out_dir``.

    Returns:
        The model id of the new checkpoint.
    """
    src = Path(src)
    if (Path(out_dir) / "model.safetensors").exists() and not overwrite:
        raise CheckpointError(
            f"{out_dir} already holds a checkpoint; use --overwrite to replace it, or another output folder."
        )
    cfg = cfg or get_preset("paper")
    obj = _safe_torch_load(src)
    state, kind = _extract_generator_state(obj, src)
    _check_keys(state, LinCAE(cfg).state_dict(), str(src))
    digest = hashlib.sha256()
    with open(src, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    card = {
        "source": {"file": src.name, "sha256": digest.hexdigest(), "format": kind},
        "note": "Imported release weights (Music2Latent weights are CC BY-NC 4.0)."
        if kind == "music2latent"
        else "Imported Lin-CAE release weights.",
    }
    return save_checkpoint({k: v.float() for k, v in state.items()}, out_dir, cfg, card)
