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
    "release_config",
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

    ``path`` may also name a released model (``lin-cae``, ``lin-cae-2``, ``m2l`` or
    ``hf:REPO[@REVISION]/PATH``): it is downloaded, converted and cached on first use
    (:func:`lincae_core.hub.resolve_checkpoint`); a directory of that name is a checkpoint first.
    The returned model has its ``model_id`` and ``card`` fields set. With ``verify`` the model id
    is recomputed from the weights and must match the card.
    """
    device = resolve_device(device)
    if path is not None and not (Path(path) / "config.json").is_file():
        from lincae_core.hub import is_model_name, resolve_checkpoint  # hub imports this module

        if is_model_name(str(path)):
            path = resolve_checkpoint(str(path))
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


# One key mapping between the configurations: reference kwarg -> ModelConfig field
# (frontend_kwargs_*.yaml, generator_kwargs_*.yaml of the releases; method.md section 5).
_FRONTEND_NAMES = {
    "hop_size": "hop",
    "n_fft_factor": "n_fft_factor",
    "alpha_rescale": "alpha",
    "beta_rescale": "beta",
    "sample_rate": "sample_rate",
}
_GENERATOR_NAMES = {
    "base_channels": "base_channels",
    "layers_list": "layers",
    "multipliers_list": "multipliers",
    "attention_list": "attention",
    "freq_downsample_list": "freq_downsample",
    "layers_list_encoder": "encoder_layers",
    "attention_list_encoder": "encoder_attention",
    "bottleneck_base_channels": "bottleneck_base_channels",
    "bottleneck_channels": "latent_dim",
    "num_bottleneck_layers": "num_bottleneck_layers",
    "hop": "hop",
    "cond_channels": "cond_channels",
    "heads": "heads",
    "sigma_min": "sigma_min",
    "sigma_max": "sigma_max",
    "sigma_data": "sigma_data",
    "data_channels": "data_channels",
    "pre_normalize_downsampling_encoder": "pre_normalize_downsampling_encoder",
    "pre_normalize_2d_to_1d": "pre_normalize_2d_to_1d",
    "frequency_scaling": "frequency_scaling",
}
# The reference's constructor defaults (linear-cae 0.1.4 ``ScaledComplexSTFT``, ``UNet``): a
# release's YAML files leave out what its training run did not change.
_REF_DEFAULTS: dict[str, Any] = {
    **dict(hop_size=256, n_fft_factor=4, alpha_rescale=0.3, beta_rescale=1.5, sample_rate=None),
    **dict(base_channels=64, layers_list=[2, 2, 2, 2, 2], multipliers_list=[1, 2, 4, 4, 4]),
    **dict(attention_list=[0, 0, 1, 1, 1], freq_downsample_list=[1, 0, 0, 0]),
    **dict(layers_list_encoder=[1, 1, 1, 1, 1], attention_list_encoder=[0, 0, 1, 1, 1]),
    **dict(bottleneck_base_channels=512, bottleneck_channels=64, num_bottleneck_layers=4, hop=256),
    **dict(cond_channels=256, heads=4, sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, data_channels=2),
    **dict(pre_normalize_downsampling_encoder=True, pre_normalize_2d_to_1d=True, frequency_scaling=True),
}
# Reference generator arguments without a lincae counterpart: only their default is the lincae
# network (None: any value is, they act in training or initialisation only).
_REF_FIXED: dict[str, Any] = dict(
    use_fourier=False,
    normalization=True,
    padding_mode="zeros",
    bottleneck_layers=None,
    fourier_scale=None,
    dropout_rate=None,
    min_res_dropout=None,
    init_as_zero=None,
)
# Diffusion arguments: the sampler's (checked or used) and those of training only (ignored).
_REF_DIFFUSION = ("sigma_min", "sigma_max", "sigma_data", "rho")
_REF_TRAINING = (
    *("schedule", "start_exp", "end_exp", "base_step", "p_mean", "p_std", "use_lognormal"),
    *("total_iters", "enable_grad_denoise"),
)


def reference_kwargs(cfg: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference (linear-cae) ``frontend`` and ``generator`` kwargs equal to ``cfg``.

    These mirror the release's ``frontend_kwargs_*.yaml`` / ``generator_kwargs_*.yaml``
    (method.md section 5); :func:`release_config` is the inverse.
    """

    def ref(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    frontend = {k: ref(getattr(cfg, f)) for k, f in _FRONTEND_NAMES.items()}
    generator = {k: ref(getattr(cfg, f)) for k, f in _GENERATOR_NAMES.items()}
    return frontend, generator


def release_config(
    frontend: dict[str, Any], generator: dict[str, Any], diffusion: dict[str, Any] | None = None
) -> ModelConfig:
    """The ``ModelConfig`` of a release's ``frontend``/``generator``/``diffusion`` kwargs (YAML).

    Missing keys take the reference's defaults, as ``linear_cae.Autoencoder.from_pretrained``
    does. Strict: an unknown key, a reference option lincae does not implement, or sigmas that
    differ between the generator and the diffusion are a :class:`CheckpointError`. A config equal
    to the ``paper`` preset is that preset (so an import by name and by file share the model id).
    """
    diffusion = diffusion or {}
    unknown = sorted(set(frontend) - set(_FRONTEND_NAMES))
    unknown += sorted(set(generator) - set(_GENERATOR_NAMES) - set(_REF_FIXED))
    unknown += sorted(set(diffusion) - {*_REF_DIFFUSION, *_REF_TRAINING})
    if unknown:
        raise CheckpointError(f"Release config: unknown key {unknown[0]!r} ({len(unknown)} unknown in all).")
    for key, want in _REF_FIXED.items():
        if want is not None and key in generator and generator[key] != want:
            raise CheckpointError(f"Release config: expected {key}={want!r}. Got {generator[key]!r} instead.")
    front = {k: frontend.get(k, _REF_DEFAULTS[k]) for k in _FRONTEND_NAMES}
    gen = {k: generator.get(k, _REF_DEFAULTS[k]) for k in _GENERATOR_NAMES}
    if front["sample_rate"] is None or gen["hop"] != front["hop_size"]:
        raise CheckpointError(
            "Release config: expected a sample_rate and generator hop == frontend hop_size. Got "
            f"sample_rate={front['sample_rate']!r}, hop={gen['hop']!r}, hop_size={front['hop_size']!r}."
        )
    for key in ("sigma_min", "sigma_max", "sigma_data"):
        if key in diffusion and float(diffusion[key]) != float(gen[key]):
            raise CheckpointError(
                f"Release config: diffusion {key}={diffusion[key]!r} differs from generator's {gen[key]!r}."
            )
    fields = {f: front[k] for k, f in _FRONTEND_NAMES.items()}
    fields.update({f: gen[k] for k, f in _GENERATOR_NAMES.items()}, rho=diffusion.get("rho", 7.0))
    paper = get_preset("paper")
    try:  # YAML's 80 is the config's 80.0: typed as the config is, so that the model id agrees
        typed: dict[str, Any] = {
            k: tuple(int(x) for x in v)
            if isinstance(getattr(paper, k), tuple)
            else type(getattr(paper, k))(v)
            for k, v in fields.items()
        }
        cfg = ModelConfig(name="release", **typed)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"Release config: {exc}") from exc
    return paper if cfg.replace(name=paper.name) == paper else cfg


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
    src: str | Path,
    out_dir: str | Path,
    cfg: ModelConfig | None = None,
    overwrite: bool = False,
    source: dict[str, Any] | None = None,
) -> str:
    """Convert a released Lin-CAE or Music2Latent weights file into a lincae checkpoint.

    Args:
        src: ``.pth``/``.pt`` file (Lin-CAE ``frontend.window`` + ``generator.*``, or
            Music2Latent ``{'gen_state_dict': ...}``).
        out_dir: checkpoint directory to write.
        cfg: model config of the weights (default: the ``paper`` preset).
        overwrite: replace a checkpoint already in ``out_dir``.
        source: more provenance for the card's ``source`` (a download: repository, commit, the
            sha256 of every file it was made from).

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
        "source": {"file": src.name, "sha256": digest.hexdigest(), "format": kind, **(source or {})},
        "note": "Imported release weights (Music2Latent weights are CC BY-NC 4.0)."
        if kind == "music2latent"
        else "Imported Lin-CAE release weights.",
    }
    return save_checkpoint({k: v.float() for k, v in state.items()}, out_dir, cfg, card)
