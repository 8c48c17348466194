"""Run bookkeeping of ``lincae train``: the run folder, resumable state, signals and distribution.

A run folder holds ``train_config.json`` (the ``TrainConfig``), ``metrics.jsonl`` (one JSON
object per line: training rows and validation rows), ``state.pt`` (everything a bit-exact resume
needs; tensors and plain types only, read with ``torch.load(weights_only=True)``) and ``ema/``
(a lincae checkpoint of the EMA weights). Only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lincae_core.config import TrainConfig, load_json_config
from lincae_core.device import resolve_device
from lincae_core.errors import CheckpointError, ConfigError
from lincae_core.publish import atomic_path

__all__ = [
    "STATE_FORMAT",
    "Distributed",
    "MetricsLog",
    "StopFlag",
    "gather_rank_state",
    "load_state",
    "save_state",
    "schedule_change_on_resume",
    "TrainingParts",
    "setup_distributed",
]

log = logging.getLogger(__name__)

STATE_FORMAT = "lincae-train-state"
STATE_VERSION = 1


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints and logs."""
        return self.rank == 0


def setup_distributed(device: str) -> tuple[Distributed, torch.device]:
    """Join the ``torchrun`` process group named by WORLD_SIZE/RANK (gloo on CPU, nccl on CUDA).

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        The process's ``Distributed`` and its device.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local if world > 1 else None)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Distributed(rank, world, local), dev


def gather_rank_state(state: dict[str, Any], env: Distributed) -> list[dict[str, Any]]:
    """Collect every rank's RNG/sampler state on all ranks (a list indexed by rank)."""
    if not env.enabled:
        return [state]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, state)
    return out


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


class StopFlag:
    """Set by SIGINT/SIGTERM so the loop can save its state and stop after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: saving the training state after this step.", self.signal_name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Install the handlers for the duration of the block (main thread only), then restore."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def agreed(self, env: Distributed, device: torch.device, extra: bool = False) -> bool:
        """Whether any rank wants to stop (every rank must call this at the same step)."""
        want = self.requested or extra
        if not env.enabled:
            return want
        flag = torch.tensor([1.0 if want else 0.0], device=device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)


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
                "from fresh seeds (not bit-exact).", len(ranks), env.world_size,
            )
        if env.rank < len(ranks):
            mine = ranks[env.rank]
            self.generator.set_state(mine["generator"])
            self.sampler.load_state_dict(mine["sampler"])
            torch.set_rng_state(mine["torch"])
            if "cuda" in mine and torch.cuda.is_available():
                torch.cuda.set_rng_state(mine["cuda"])


def objective_name(cfg: TrainConfig) -> str:
    """Name the trained variant: Lin-CAE, one of its ablations, or the Music2Latent baseline."""
    names = {(True, True): "lin-cae", (False, True): "lin-cae without additivity",
             (True, False): "lin-cae without homogeneity", (False, False): "music2latent baseline"}
    return names[(cfg.additivity, cfg.homogeneity)]


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
    card = {"training": {
        "commands": commands, "objective": objective_name(cfg), "config": cfg.to_dict(),
        "corpus": corpus, "valid_set": cfg.valid, "total_steps": cfg.total_steps,
        "world_size": env.world_size, "weights": "EMA", "valid": valid,
    }}
    if changes:
        card["training"]["schedule_changes"] = changes
    return card


def weights_sha256(model: nn.Module) -> str:
    """Digest of the trained weights (ranks of a DDP run must agree)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().clone(memory_format=torch.contiguous_format).reshape(-1).view(torch.uint8).numpy().tobytes())
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
        raise ConfigError(f"{out}: --steps {cfg.total_steps} is below the run's step {step}; "
                          f"expected a schedule length >= {step}.")
    if old is None or old == cfg.total_steps:
        return None
    return {"step": step, "from": int(old), "to": cfg.total_steps}


def resolve_train_config(
    config_file: str | Path | None, out_dir: str | Path, resume: bool, overrides: dict[str, Any]
) -> TrainConfig:
    """Merge the run's config: saved ``train_config.json`` (on resume) < ``config_file`` < overrides.

    Args:
        config_file: a JSON ``TrainConfig`` file, or None.
        out_dir: the run folder (its ``train_config.json`` is the base when resuming).
        resume: whether the run resumes.
        overrides: explicit values (e.g. from the command line); None values are ignored.

    Raises:
        ConfigError: an unreadable file, unknown keys or invalid values.
    """
    merged: dict[str, Any] = {}
    saved = Path(out_dir) / "train_config.json"
    if resume and saved.is_file():
        merged.update(load_json_config(saved))
    if config_file is not None:
        merged.update(load_json_config(config_file))
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(merged)
