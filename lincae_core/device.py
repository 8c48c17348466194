"""Where a model runs: the one resolver of ``--device`` values used by every command."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from lincae_core.errors import ConfigError

__all__ = ["resolve_device", "torch_threads"]


def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """Map ``auto|cpu|cuda[:i]`` to a device (``auto``: CUDA when available, else CPU).

    Args:
        name: The requested device.
        local_rank: Under ``torchrun``, a bare ``cuda`` becomes ``cuda:<local_rank>``.

    Raises:
        ConfigError: A CUDA device was asked for on a machine without one, or the name is invalid.
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"Expected a CUDA device for {name!r}. Got none (torch sees no GPU).")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"Expected device auto, cpu or cuda[:i]. Got {name!r} instead.") from exc
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device() if local_rank is None else local_rank)
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads for a block, restored afterwards (None: unchanged).
    Process-wide: every thread's torch calls in the block run on ``n`` threads."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def channels_last(module: torch.nn.Module, on: bool = True) -> Iterator[None]:
    """Run a block with ``module``'s 4-D weights in channels-last memory format, converted back to
    contiguous afterwards (the same values: the conversion only moves them). On these CPUs the
    oneDNN convolutions run faster on channels-last tensors (docs/encoding.md, "Decode"); the
    results differ from the contiguous ones by float32 rounding. Not for a module other threads
    use meanwhile."""
    if not on:
        yield
        return
    module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        yield
    finally:
        module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
