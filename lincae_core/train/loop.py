"""Consistency training of a Lin-CAE (arXiv:2510.23530, Sec. 3.3; method.md section 3).

One step: augment the crops (``augment.py``), encode the unscaled sources, build the pyramid
of the conditioning latents a·z' once, then the iCT pair — student f_θ(T(a·x) + σ₂ε, σ₂, a·z')
with gradients and teacher f_θ(T(a·x) + σ₁ε, σ₁, a·z') with the same weights and a detached
output, one shared ε — under λ = 1/(σ₂ − σ₁) and a pseudo-Huber distance. RAdam with linear
warm-up and cosine decay (``get_lr``); EMA every ``ema_every`` steps.

Layouts: audio ``[B, T]``; representations ``[N, 2, F, M]``; latents ``[B, D, Z]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lincae_core.config import ModelConfig, TrainConfig
from lincae_core.errors import ConfigError
from lincae_core.nn.consistency import delta_t, loss_weight, pseudo_huber, sample_t, sigma_from_t
from lincae_core.nn.model import LinCAE
from lincae_core.nn.transforms import to_representation
from lincae_core.train.augment import AugmentedBatch, augment_batch, conditioning_latents, gain_range
from lincae_core.train.data import CropSampler, open_source, segment_length
from lincae_core.train.distributed import Distributed, StopFlag, gather_rank_state, setup_distributed
from lincae_core.train.ema import EMA
from lincae_core.train.provenance import model_card, schedule_change_on_resume, weights_sha256
from lincae_core.train.state import MetricsLog, TrainingParts, load_state, prepare_run_dir, save_state
from lincae_core.train.validation import Validator

__all__ = [
    "ConsistencyObjective",
    "TrainSummary",
    "get_lr",
    "noise_levels",
    "train",
    "train_step",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, Any]], None]


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate: linear warm-up, then cosine decay to ``lr_min`` (method.md §3, "Optimizer").

    ``lr·k/W`` for k < W, then ``lr_min + ½(lr − lr_min)(1 + cos(π (k − W)/(K − W)))``, k ≤ K.
    """
    warmup, total = cfg.warmup, cfg.total_steps
    if step < warmup:
        return cfg.lr * step / warmup
    k = min(step, total)
    cosine = 1.0 + math.cos(math.pi * (k - warmup) / (total - warmup))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * cosine


def noise_levels(
    n: int, step: int, cfg: TrainConfig, mcfg: ModelConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the iCT pair (σ₂, σ₁): lognormal t₂ on the ρ-grid, t₁ = max(t₂ − Δt(k), 0) (method.md §3).

    Returns:
        ``(sigma_student, sigma_teacher)``, each ``[n]``, with σ₂ ≥ σ₁.
    """
    t2 = sample_t(n, generator, mcfg.sigma_min, mcfg.sigma_max, mcfg.rho, cfg.p_mean, cfg.p_std)
    t1 = (t2 - delta_t(step, cfg.total_steps, cfg.end_exp, cfg.base_dt)).clamp(min=0.0)
    s2 = sigma_from_t(t2, mcfg.sigma_min, mcfg.sigma_max, mcfg.rho)
    s1 = sigma_from_t(t1, mcfg.sigma_min, mcfg.sigma_max, mcfg.rho)
    return torch.as_tensor(s2), torch.as_tensor(s1)


class ConsistencyObjective(nn.Module):
    """The Lin-CAE consistency-training loss as one ``forward`` (arXiv:2510.23530, Eq. 4).

    A module so that DistributedDataParallel can wrap it: every parameter is reached from
    ``forward``. ``huber_c=None`` uses c = 5.4e-4·√D (the reference code).
    """

    def __init__(self, model: LinCAE, huber_c: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.huber_c = huber_c

    def forward(
        self,
        batch: AugmentedBatch,
        target: torch.Tensor,
        sigma2: torch.Tensor,
        sigma1: torch.Tensor,
        eps: torch.Tensor,
    ) -> torch.Tensor:
        """Return the batch-mean loss.

        Args:
            batch: the augmented batch (``batch.x`` ``[B, T]`` goes to the encoder, unscaled).
            target: T(a·x_aug) ``[N, 2, F, M]``.
            sigma2: student noise levels ``[N]``.
            sigma1: teacher noise levels ``[N]``.
            eps: the shared noise ``[N, 2, F, M]``.
        """
        m = self.model
        # (B, D, Z): Lin-CAE encodes the sources only and mixes their latents; the official
        # baseline encodes its appended mixtures as well (2B, D, Z)
        z = m.encoder(to_representation(batch.encoder_input, m.config))
        pyramid = m.decoder(conditioning_latents(z, batch))  # once, shared by student and teacher
        student = m.denoise(target + sigma2.reshape(-1, 1, 1, 1) * eps, sigma2, pyramid)
        with torch.no_grad():
            teacher = m.denoise(target + sigma1.reshape(-1, 1, 1, 1) * eps, sigma1, pyramid)
        per_item = loss_weight(sigma2, sigma1) * pseudo_huber(student.float() - teacher.float(), self.huber_c)
        return torch.nan_to_num(per_item, nan=0.0).mean()


def _autocast(device: torch.device, cfg: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda" and cfg.mixed_precision:
        return torch.autocast("cuda", dtype=getattr(torch, cfg.cuda_autocast))
    if device.type == "cpu" and cfg.cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    step: int,
    cfg: TrainConfig,
    mcfg: ModelConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Run one optimiser step on crops ``x`` ``[B, T]`` at global step ``step`` (0-based).

    Every random draw comes from ``generator`` (CPU), in a fixed order: augmentation, t, noise.

    Returns:
        ``{"loss", "lr", "a_min", "a_max", "dt"}``.
    """
    lr = get_lr(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    batch = augment_batch(x, cfg, step, generator)
    target = to_representation(batch.target, mcfg)  # (N, 2, F, M)
    sigma2, sigma1 = noise_levels(target.shape[0], step, cfg, mcfg, generator)
    eps = torch.randn(target.shape, generator=generator).to(x.device)
    if cfg.channels_last:
        target, eps = (t.contiguous(memory_format=torch.channels_last) for t in (target, eps))
    with _autocast(x.device, cfg):
        loss = objective(batch, target, sigma2.to(x.device), sigma1.to(x.device), eps)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    a_min, a_max = gain_range(step, cfg.total_steps, cfg.anneal) if cfg.homogeneity else (1.0, 1.0)
    dt = delta_t(step, cfg.total_steps, cfg.end_exp, cfg.base_dt)
    return {"loss": float(loss.detach()), "lr": lr, "a_min": a_min, "a_max": a_max, "dt": dt}


@dataclass
class TrainSummary:
    """What a ``train`` call did."""

    out_dir: Path
    step: int
    total_steps: int
    interrupted: bool = False
    last: dict[str, float] = field(default_factory=dict)
    valid: dict[str, float] = field(default_factory=dict)
    model_id: str | None = None
    data_stats: dict[str, int] = field(default_factory=dict)
    weights_sha256: str = ""

    @property
    def finished(self) -> bool:
        """Whether the run reached ``total_steps``."""
        return self.step >= self.total_steps


def _build(
    cfg: TrainConfig, mcfg: ModelConfig, env: Distributed, device: torch.device
) -> tuple[TrainingParts, nn.Module]:
    """Create the model, the (DDP-wrapped) objective, optimiser, scaler, EMA, sampler and generator."""
    if not cfg.data:
        raise ConfigError("Expected at least one data source (--data PATH[:WEIGHT]).")
    sampler = CropSampler(
        [open_source(s) for s in cfg.data],
        mcfg.sample_rate,
        segment_length(cfg, mcfg),
        cfg.seed,
        env.rank,
        cfg.silence_rms,
    )
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = LinCAE(mcfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    objective: nn.Module = ConsistencyObjective(model, cfg.huber_c)
    if env.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # find_unused_parameters: the latent upsampler's proj_emb layers are dead (method.md §2.2).
        objective = DistributedDataParallel(objective, device_ids=ids, find_unused_parameters=True)
    optimizer = torch.optim.RAdam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps)
    fp16 = device.type == "cuda" and cfg.mixed_precision and cfg.cuda_autocast == "float16"
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)  # bfloat16 needs no loss scaling
    if device.type == "cuda" and cfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    generator = torch.Generator().manual_seed(cfg.seed * 2 + 1 + 1_000_003 * env.rank)
    ema = EMA(model, cfg.ema_decay, cfg.ema_every)
    return TrainingParts(model, optimizer, scaler, ema, sampler, generator), objective


@dataclass
class _Run:
    """The fixed context of one ``train`` call, shared by the loop helpers."""

    cfg: TrainConfig
    mcfg: ModelConfig
    env: Distributed
    device: torch.device
    out: Path
    card: dict[str, Any]
    metrics: MetricsLog | None = None
    validator: Validator | None = None
    progress: ProgressFn | None = None


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    max_seconds: float | None = None,
    progress: ProgressFn | None = None,
    command: str | None = None,
) -> TrainSummary:
    """Train a Lin-CAE (or its baseline/ablations) into the run folder ``out_dir``.

    Works alone or under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA; rank 0 writes;
    ``batch_size`` is per process). The state is saved every ``checkpoint_every`` steps, at
    the end, and on SIGINT/SIGTERM.

    Args:
        cfg: the training configuration (written to ``train_config.json``).
        out_dir: the run folder.
        resume: continue from ``out_dir/state.pt`` (bit-for-bit on the same world size).
        stop_at: stop (and save) at this global step, before ``cfg.total_steps``.
        max_seconds: stop (and save) after this much wall time.
        progress: called as ``progress(step, total_steps, row)`` after every step.
        command: the command line, recorded in the EMA checkpoint's model card.

    Raises:
        ConfigError: a bad config, missing data, or a run folder in the wrong state.
        CheckpointError: an unreadable ``state.pt`` on resume.
    """
    out = Path(out_dir)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    env, device = setup_distributed(cfg.device)
    mcfg = cfg.model_config()
    if cfg.preset == "paper" and device.type == "cpu" and env.is_main:
        log.warning(
            "training the paper preset (44.1 kHz, 58 M parameters, batch %d of %d-frame crops) "
            "on CPU: a step took about 108 s at batch 4 on a 2-core machine (docs/presets.md). "
            "For a CPU run use --preset tiny or small: they train with the CPU recipe "
            "(docs/training-recipe.md).",
            cfg.batch_size,
            cfg.segment_frames,
        )
    prepare_run_dir(out, resume, env)
    parts, objective = _build(cfg, mcfg, env, device)
    if resume:
        state = load_state(out / "state.pt", device)
        if state["model_config"] != mcfg.to_dict():
            raise ConfigError(f"{out}/state.pt was trained with another model config; cannot resume with it.")
        parts.load_state_dict(state, env)
    schedule_change = schedule_change_on_resume(out, cfg, parts.step) if resume else None
    run = _Run(
        cfg,
        mcfg,
        env,
        device,
        out,
        model_card(cfg, parts, env, command or " ".join(sys.argv), out),
        progress=progress,
    )
    if schedule_change is not None:
        run.card["training"].setdefault("schedule_changes", []).append(schedule_change)
        if env.is_main:
            log.warning(
                "%s: resuming at step %d with schedule length K=%d (was %d): the learning rate, "
                "Delta-t and gain range follow the new schedule from here on (a warm restart)",
                out,
                parts.step,
                schedule_change["to"],
                schedule_change["from"],
            )
    if env.is_main:
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        run.metrics = MetricsLog(out / "metrics.jsonl", parts.step if resume else None)
        run.validator = Validator(cfg, mcfg, device)
    end = cfg.total_steps if stop_at is None else min(stop_at, cfg.total_steps)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    summary = TrainSummary(out, parts.step, cfg.total_steps)
    stop = StopFlag()
    with stop.installed():
        summary.interrupted = _loop(parts, objective, run, end, stop, deadline, summary)
    summary.model_id = _save(parts, run)
    summary.step, summary.valid = parts.step, run.card["training"]["valid"]
    summary.data_stats = dict(parts.sampler.stats)
    summary.weights_sha256 = weights_sha256(parts.model)
    return summary


def _loop(
    parts: TrainingParts,
    objective: nn.Module,
    run: _Run,
    end: int,
    stop: StopFlag,
    deadline: float | None,
    summary: TrainSummary,
) -> bool:
    """Run steps until ``end``, a signal or the deadline; return whether a signal stopped it."""
    cfg = run.cfg
    losses, t_log = [], time.monotonic()
    objective.train()
    while parts.step < end:
        x = parts.sampler.batch(cfg.batch_size).to(run.device)
        row = train_step(
            objective, parts.optimizer, parts.scaler, x, parts.step, cfg, run.mcfg, parts.generator
        )
        parts.step += 1
        parts.ema.update(parts.model, parts.step)
        losses.append(row["loss"])
        if run.metrics is not None and (parts.step % cfg.log_every == 0 or parts.step == end):
            now = time.monotonic()
            row = {
                "step": parts.step,
                **row,
                "loss": sum(losses) / len(losses),
                "sec_per_step": (now - t_log) / len(losses),
            }
            run.metrics.write(row)
            summary.last, losses, t_log = row, [], now
        if run.progress is not None:
            run.progress(parts.step, cfg.total_steps, {"step": parts.step, **row})
        if run.validator is not None and parts.step % cfg.valid_every == 0:
            _validate_and_log(parts, run)
        if stop.agreed(run.env, run.device, deadline is not None and time.monotonic() > deadline):
            return stop.requested
        if parts.step % cfg.checkpoint_every == 0 and parts.step < end:
            _save(parts, run)
    return False


def _validate_and_log(parts: TrainingParts, run: _Run) -> None:
    """Score the EMA weights and record the result in the log and the model card."""
    assert run.validator is not None, "validation runs on rank 0 only"
    assert run.metrics is not None, "validation runs on rank 0 only"
    valid = run.validator(parts.ema, run.cfg.seed)
    if valid:
        run.card["training"]["valid"] = {"step": parts.step, **valid}
        run.metrics.write({"step": parts.step, "kind": "valid", **valid})
        log.info("step %d validation: %s", parts.step, valid)


def _save(parts: TrainingParts, run: _Run) -> str | None:
    """Save ``state.pt`` and the EMA checkpoint ``ema/`` (every rank joins; rank 0 writes)."""
    from lincae_core.checkpoint import save_checkpoint

    ranks = gather_rank_state(parts.rank_state(), run.env)
    if not run.env.is_main:
        return None
    extra = {
        "train_config": run.cfg.to_dict(),
        "model_config": run.mcfg.to_dict(),
        "world_size": run.env.world_size,
    }
    save_state(run.out / "state.pt", parts.state_dict(ranks, extra))
    run.card["training"].update(steps=parts.step, data_stats=dict(parts.sampler.stats))
    return save_checkpoint(parts.ema.shadow, run.out / "ema", run.mcfg, run.card)
