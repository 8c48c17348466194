"""Run bookkeeping of ``lincae train``: the run folder, its configuration and resumable state.

A run folder holds ``train_config.json`` (the ``TrainConfig``), ``metrics.jsonl`` (one JSON
object per line: training rows and validation rows), ``state.pt`` (everything a bit-exact resume
needs; tensors and plain types only, read with ``torch.load(weights_only=True)``) and ``ema/``
(a lincae checkpoint of the EMA weights). Only rank 0 writes. Process control (``torchrun``,
signals) is :mod:`lincae_core.train.distributed`; the model card of a run is
:mod:`lincae_core.train.provenance`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lincae_core.config import TrainConfig, load_json_config, preset_defaults
from lincae_core.errors import CheckpointError, ConfigError
from lincae_core.publish import atomic_path
from lincae_core.train.distributed import Distributed

__all__ = [
    "STATE_FORMAT",
    "MetricsLog",
    "TrainingParts",
    "load_state",
    "prepare_run_dir",
    "resolve_train_config",
    "save_state",
]

log = logging.getLogger(__name__)

STATE_FORMAT = "lincae-train-state"
STATE_VERSION = 1


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state.pt`` atomically (a kill mid-write leaves the previous one intact)."""
    _atomic_torch_save({"format": STATE_FORMAT, "format_version": STATE_VERSION, **state}, path)


def load_state(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read ``state.pt`` with ``weights_only=True`` and check its format.

    Raises:
        CheckpointError: missing, unreadable or foreign file.
    """
    if not path.is_file():
        raise CheckpointError(f"Cannot resume: {path} does not exist (no saved training state).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"Cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a lincae training state.")
    if state.get("format_version") != STATE_VERSION:
        raise CheckpointError(
            f"{path} has training-state version {state.get('format_version')!r}; expected {STATE_VERSION}."
        )
    return state


class MetricsLog:
    """Append-only JSON-lines log (``metrics.jsonl``); a resume drops rows past the resumed step."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            rows = [line for line in path.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if json.loads(r).get("step", 0) <= resume_step]
            path.write_text("".join(r + "\n" for r in kept))

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        with open(self.path, "a") as f:
            f.write(json.dumps(row, sort_keys=False) + "\n")


@dataclass
class TrainingParts:
    """Everything a training step mutates, and so everything ``state.pt`` must hold."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: Any  # lincae_core.train.ema.EMA
    sampler: Any  # lincae_core.train.data.CropSampler
    generator: torch.Generator
    step: int = 0

    def rank_state(self) -> dict[str, Any]:
        """This rank's random state: step generator, data sampler, global torch RNGs."""
        state: dict[str, Any] = {
            "generator": self.generator.get_state(),
            "sampler": self.sampler.state_dict(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def state_dict(self, ranks: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
        """The full resumable state, with every rank's random state."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ranks": ranks,
            **extra,
        }

    def load_state_dict(self, state: dict[str, Any], env: Distributed) -> None:
        """Restore a ``state_dict``; rank r takes the r-th random state when the world size matches."""
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        ranks = state["ranks"]
        if len(ranks) != env.world_size:
            log.warning(
                "Resuming %d-process state with %d processes: the data and noise streams restart "
                "from fresh seeds (not bit-exact).",
                len(ranks),
                env.world_size,
            )
        if env.rank < len(ranks):
            mine = ranks[env.rank]
            self.generator.set_state(mine["generator"])
            self.sampler.load_state_dict(mine["sampler"])
            torch.set_rng_state(mine["torch"])
            if "cuda" in mine and torch.cuda.is_available():
                torch.cuda.set_rng_state(mine["cuda"])


def prepare_run_dir(out: Path, resume: bool, env: Distributed) -> None:
    """Check that ``out`` suits a new run or a resume, and create it (rank 0).

    Raises:
        ConfigError: resuming without ``state.pt``, or a new run over an existing one.
    """
    state = out / "state.pt"
    if resume and not state.is_file():
        raise ConfigError(f"Cannot resume: {state} does not exist. Start a new run without --resume.")
    if not resume and state.exists():
        raise ConfigError(
            f"{out} already holds a training run; pass --resume to continue it or choose another -o."
        )
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)


def resolve_train_config(
    config_file: str | Path | None, out_dir: str | Path, resume: bool, overrides: dict[str, Any]
) -> TrainConfig:
    """Merge the run's config: preset defaults < saved ``train_config.json`` (on resume) <
    ``config_file`` < overrides.

    A new run of a CPU preset (``tiny``, ``small``) starts from the CPU recipe
    (:data:`lincae_core.config.CPU_RECIPE`) rather than the paper's GPU settings.

    Args:
        config_file: a JSON ``TrainConfig`` file, or None.
        out_dir: the run folder (its ``train_config.json`` is the base when resuming).
        resume: whether the run resumes.
        overrides: explicit values (e.g. from the command line); None values are ignored.

    Raises:
        ConfigError: an unreadable file, unknown keys or invalid values.
    """
    layers: list[dict[str, Any]] = []
    saved = Path(out_dir) / "train_config.json"
    if resume and saved.is_file():
        layers.append(load_json_config(saved))
    if config_file is not None:
        layers.append(load_json_config(config_file))
    layers.append({k: v for k, v in overrides.items() if v is not None})
    preset = next((d["preset"] for d in reversed(layers) if d.get("preset")), TrainConfig.preset)
    merged = preset_defaults(preset) if not (resume and saved.is_file()) else {}
    for layer in layers:
        merged.update(layer)
    return TrainConfig.from_dict(merged)
