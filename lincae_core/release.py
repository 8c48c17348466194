"""Released weights into lincae checkpoints: the one key mapping between the reference package's
configuration (``frontend_kwargs_*.yaml``, ``generator_kwargs_*.yaml``) and :class:`ModelConfig`
(:func:`reference_kwargs`, :func:`release_config`), and the strict importer of released
Music2Latent ``.pt`` / Lin-CAE ``.pth`` files (:func:`import_weights`: ``torch.load(weights_only=True)``,
exact keys; method.md section 5).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from lincae_core.checkpoint import check_keys, save_checkpoint
from lincae_core.config import ModelConfig, get_preset
from lincae_core.errors import CheckpointError, ConfigError
from lincae_core.nn.model import LinCAE
from lincae_core.nn.transforms import analysis_window

__all__ = ["import_weights", "reference_kwargs", "release_config"]

log = logging.getLogger(__name__)

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
    check_keys(state, LinCAE(cfg).state_dict(), str(src))
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
