"""Exponential moving average of model weights with warm-up (method.md section 3, "EMA").

The EMA weights are what validation uses and what gets saved for inference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["EMA", "ema_decay"]


def ema_decay(num_updates: int, decay: float = 0.9999) -> float:
    """EMA decay with warm-up min(decay, (1 + n)/(10 + n)) (Music2Latent / torch_ema ``use_num_updates``)."""
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


class EMA:
    """Shadow copy of a model's floating-point parameters and buffers, updated every ``every`` steps.

    Lin-CAE updates the EMA every 10 steps (arXiv:2510.23530, Sec. 3.3); Music2Latent every step.

    Args:
        model: the model to track (its current weights initialise the shadow).
        decay: the asymptotic decay (0.9999).
        every: update period in optimiser steps.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, every: int = 10) -> None:
        self.decay = decay
        self.every = every
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> bool:
        """Fold the model's weights into the shadow when ``step`` is a multiple of ``every``.

        Args:
            model: the trained model.
            step: the global step just completed (1-based).

        Returns:
            Whether an update happened.
        """
        if step % self.every:
            return False
        self.num_updates += 1
        d = ema_decay(self.num_updates, self.decay)
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.mul_(d).add_(v.detach().float(), alpha=1.0 - d)
            else:
                s.copy_(v)
        return True

    def copy_to(self, model: nn.Module) -> None:
        """Load the shadow weights into ``model`` (strict)."""
        target = model.state_dict()
        model.load_state_dict({k: v.to(target[k].dtype) for k, v in self.shadow.items()})

    def state_dict(self) -> dict[str, Any]:
        """Resumable state (tensors and plain types only)."""
        return {
            "decay": self.decay,
            "every": self.every,
            "num_updates": self.num_updates,
            "shadow": self.shadow,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` (tensors are copied into the existing shadow's devices)."""
        self.decay = float(state["decay"])
        self.every = int(state["every"])
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
