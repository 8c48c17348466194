"""The encoder's forward pass as an encode runs it, with its speed options.

:func:`forward_segments` is one pass ``[N, L] -> [N, D, W]`` (float16 autocast on CUDA, a
channels-last representation, bfloat16 autocast on the CPU, ``torch.compile``);
:func:`encoder_forward` binds it to a model and the encode's settings; :func:`parallel_passes`
runs several passes at once, one torch thread each; :func:`encoder_memory_format` and
:func:`deterministic_cudnn` set the encoder's weight layout and cuDNN's mode for the length of an
encode (restored afterwards). docs/encoding.md, "Speed options".
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from lincae_core.device import channels_last as _channels_last
from lincae_core.device import torch_threads
from lincae_core.encoding.settings import EncodeSettings
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE

__all__ = [
    "deterministic_cudnn",
    "encoder_forward",
    "encoder_memory_format",
    "forward_segments",
    "parallel_passes",
]

_COMPILED: weakref.WeakKeyDictionary[LinCAE, Callable[[torch.Tensor], torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def _compiled_encoder(model: LinCAE) -> Callable[[torch.Tensor], torch.Tensor]:
    if model not in _COMPILED:
        _COMPILED[model] = torch.compile(model.encode_representation)
    return _COMPILED[model]


@torch.no_grad()
def forward_segments(
    model: LinCAE,
    x: np.ndarray,
    amp: bool = False,
    channels_last: bool = False,
    autocast: str = "none",
    compile: bool = False,
) -> np.ndarray:
    """Encode equal-length segments ``[N, L]`` into raw latents ``[N, D, W]`` (float32).

    By default the same operations as :func:`lincae_core.inference.encode_segments`. ``amp`` runs the
    encoder under float16 autocast (CUDA only); ``channels_last`` feeds it a channels-last
    representation (use with an encoder converted to channels-last); ``autocast="bf16"`` runs it
    under bfloat16 autocast on the CPU; ``compile`` through ``torch.compile``.
    """
    device = next(model.parameters()).device
    seg = torch.from_numpy(x).to(device, non_blocking=True)
    # channels-last is the non-bit-exact fast path already: take the fast front end with it
    rep = transforms.to_representation(seg, model.config, fast=channels_last)  # [N, 2, F, T]
    if channels_last:
        rep = rep.contiguous(memory_format=torch.channels_last)
    if amp:
        ctx: Any = torch.autocast("cuda", dtype=torch.float16)
    elif autocast == "bf16":
        ctx = torch.autocast(device.type, dtype=torch.bfloat16)
    else:
        ctx = contextlib.nullcontext()
    enc = _compiled_encoder(model) if compile else model.encode_representation
    with ctx:
        z = enc(rep)
    return z.float().cpu().numpy()


def encoder_forward(model: LinCAE, settings: EncodeSettings) -> Callable[[np.ndarray], np.ndarray]:
    """The forward pass of an encode with ``settings`` (resolved for the device) on ``model``."""
    device = next(model.parameters()).device
    return functools.partial(
        forward_segments,
        model,
        amp=settings.amp and device.type == "cuda",
        channels_last=bool(settings.channels_last),
        autocast=settings.autocast,
        compile=settings.compile,
    )


def parallel_passes(forward: Callable[[np.ndarray], object], passes: int) -> Callable[[np.ndarray], None]:
    """``passes`` copies of the pass at once, each on one torch thread, as the encode runs them
    (threads restored afterwards): what the batch-size probe times."""

    def run(x: np.ndarray) -> None:
        with torch_threads(1), ThreadPoolExecutor(passes) as pool:
            list(pool.map(forward, [x] * passes))

    return run


@contextlib.contextmanager
def deterministic_cudnn() -> Iterator[None]:
    """Run cuDNN in deterministic mode while encoding (restored afterwards)."""
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def encoder_memory_format(model: LinCAE, channels_last: bool) -> contextlib.AbstractContextManager[None]:
    """Convert the encoder's weights to channels-last for a block (restored afterwards)."""
    return _channels_last(model.encoder, channels_last)
