"""Process control of a training run: ``torchrun`` set-up, rank state gathering, and stopping on
SIGINT/SIGTERM at a step boundary (every rank agrees before anyone stops)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from lincae_core.device import resolve_device

__all__ = ["Distributed", "StopFlag", "gather_rank_state", "setup_distributed"]

log = logging.getLogger(__name__)


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
