"""``Enc(0)``: what the encoder gives digital silence, recorded in every store it encodes.

Encoded like the tracks (the same window), so the affine operations subtract what the encoder
really gives silence (docs/method.md §4.2). Cached per model for the process (encoding several
libraries costs one window of silence once), keyed by the window and by the parameters' in-place
version counters, so weights changed in place (a training step, ``load_state_dict``) are never
served a stale ``Enc(0)``.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np

from lincae_core.config import InferenceConfig
from lincae_core.inference import encode as encode_audio
from lincae_core.nn.model import LinCAE

__all__ = ["encode_origin"]


class _Key(NamedTuple):
    """What a cached ``Enc(0)`` of a model depends on."""

    window: int
    overlap: int
    versions: tuple[int, ...]  # the parameters' in-place version counters


class _Entry(NamedTuple):
    key: _Key
    latents: np.ndarray  # Enc(0) [D, W]


_CACHE: weakref.WeakKeyDictionary[LinCAE, _Entry] = weakref.WeakKeyDictionary()  # one entry a model


def encode_origin(model: LinCAE, inference: InferenceConfig, channels: int) -> np.ndarray:
    """``Enc(0)``: the latents ``[W, C, D]`` of one encode window of digital silence."""
    window, overlap = inference.frames(model.config)
    key = _Key(window, overlap, tuple(p._version for p in model.parameters()))
    cached = _CACHE.get(model)
    if cached is None or cached.key != key:
        silence = np.zeros(window * model.config.samples_per_frame, np.float32)
        cached = _CACHE[model] = _Entry(key, encode_audio(model, silence, inference).numpy())
    return np.repeat(cached.latents.T[:, None, :], channels, axis=1)
