"""The model card of a training run: objective, weights hash and schedule changes (written into
the EMA checkpoint by the loop, read by ``lincae info``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lincae_core.config import TrainConfig, load_json_config
from lincae_core.config.train import trained_gain_range
from lincae_core.errors import ConfigError
from lincae_core.train.distributed import Distributed
from lincae_core.train.state import TrainingParts

__all__ = ["model_card", "objective_name", "schedule_change_on_resume", "weights_sha256"]


def objective_name(cfg: TrainConfig) -> str:
    """Name the trained variant: Lin-CAE, one of its ablations, or the Music2Latent baseline."""
    names = {
        (True, True): "lin-cae",
        (False, True): "lin-cae without additivity",
        (True, False): "lin-cae without homogeneity",
        (False, False): "music2latent baseline",
    }
    return names[(cfg.additivity, cfg.homogeneity)]


def model_card(
    cfg: TrainConfig, parts: TrainingParts, env: Distributed, command: str, out: Path
) -> dict[str, Any]:
    """Start the EMA checkpoint's model card: commands, config, corpus (steps/metrics added later)."""
    corpus = [{"path": s.path, "weight": s.weight, "items": len(s)} for s in parts.sampler.sources]
    commands, valid, changes = [command], {}, []
    previous = out / "ema" / "model_card.json"
    if parts.step and previous.is_file():  # a resumed run: keep earlier commands, metrics, K changes
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            old = json.loads(previous.read_text())["training"]
            commands, valid = list(old["commands"]) + commands, dict(old["valid"])
            changes = list(old.get("schedule_changes", []))
    card = {
        "training": {
            "commands": commands,
            "objective": objective_name(cfg),
            "config": cfg.to_dict(),
            "corpus": corpus,
            "valid_set": cfg.valid,
            "total_steps": cfg.total_steps,
            "gain_range": list(trained_gain_range(cfg.to_dict())),
            "world_size": env.world_size,
            "weights": "EMA",
            "valid": valid,
        }
    }
    if changes:
        card["training"]["schedule_changes"] = changes
    return card


def weights_sha256(model: nn.Module) -> str:
    """Digest of the trained weights (ranks of a DDP run must agree)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(
            v.detach()
            .cpu()
            .clone(memory_format=torch.contiguous_format)
            .reshape(-1)
            .view(torch.uint8)
            .numpy()
            .tobytes()
        )
    return h.hexdigest()


def schedule_change_on_resume(out: Path, cfg: TrainConfig, step: int) -> dict[str, int] | None:
    """On resume: the schedule change ``{step, from, to}`` when ``--steps`` differs from the run's K.

    A finished run resumed with a larger K continues where it stopped; from then on every
    scheduled quantity (LR, Delta-t, the annealed gain range) is read off the longer schedule.

    Raises:
        ConfigError: the new K is below the step the run has already reached.
    """
    saved = out / "train_config.json"
    old = load_json_config(saved).get("total_steps") if saved.is_file() else None
    if cfg.total_steps < step:
        raise ConfigError(
            f"{out}: --steps {cfg.total_steps} is below the run's step {step}; "
            f"expected a schedule length >= {step}."
        )
    if old is None or old == cfg.total_steps:
        return None
    return {"step": step, "from": int(old), "to": cfg.total_steps}
