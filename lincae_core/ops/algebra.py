"""Latent algebra of a linear autoencoder on arrays (pure functions, no I/O).

Latents are ``z[F, C, D]`` (frames, channels, latent dim) as in the store. The pure functions
compute in float32 (numpy float16 arithmetic is emulated and ~40x slower): read float16, compute
float32, cast back when writing. They rest on the two properties that Lin-CAE training induces
(arXiv:2510.23530, Sec. 3):

- homogeneity (Property 1, Eq. 1): ``Dec(a z) ≈ a Dec(z)``;
- additivity (Property 2, Eq. 2): ``Dec(z_u + z_v) ≈ Dec(z_u) + Dec(z_v)``.

The same operations on whole stores: :mod:`lincae_core.ops.levels` (gain) and
:mod:`lincae_core.ops.mixing` (mix, extract).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lincae_core.errors import ShapeMismatchError

__all__ = ["db_to_amplitude", "extract", "gain", "match_length", "mix"]


def db_to_amplitude(db: float) -> float:
    """Convert a gain in decibels to an amplitude factor, ``10 ** (db / 20)``."""
    return float(10.0 ** (db / 20.0))


def _compute_dtype(z: np.ndarray) -> np.dtype:
    return np.result_type(z.dtype, np.float32)


def gain(z: np.ndarray, a: float) -> np.ndarray:
    """Scale a latent, ``a * z``: decodes to ``a * Dec(z)`` by homogeneity (Sec. 3, Eq. 1).

    Args:
        z: Latents ``[F, C, D]`` (any shape works).
        a: Amplitude factor (negative flips the polarity).

    Returns:
        ``a * z`` in float32 (float64 stays float64).
    """
    return z.astype(_compute_dtype(z), copy=False) * np.float32(a)


def mix(zs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum ``sum_k w_k z_k``: decodes to the mix by additivity and homogeneity (Eqs. 1-2).

    Args:
        zs: ``K`` latents of one shape ``[F, C, D]``.
        weights: ``K`` gains.

    Returns:
        The mix in float32.

    Raises:
        ShapeMismatchError: Shapes differ or ``len(weights) != len(zs)``.
    """
    if len(zs) == 0 or len(zs) != len(weights):
        raise ShapeMismatchError(
            f"mix: expected one weight per latent and at least one latent, "
            f"got {len(zs)} latents and {len(weights)} weights"
        )
    shape = zs[0].shape
    for z in zs[1:]:
        if z.shape != shape:
            raise ShapeMismatchError(f"mix: expected latents of shape {shape}, got {z.shape}")
    out = gain(zs[0], weights[0])
    for z, w in zip(zs[1:], weights[1:], strict=True):
        out += np.float32(w) * z.astype(out.dtype, copy=False)
    return out


def extract(z_mix: np.ndarray, z_others: Sequence[np.ndarray]) -> np.ndarray:
    """Latent-arithmetic source estimate ``z_mix - sum z_others`` (Sec. 4.5, Fig. 3).

    With ``z_others`` the accompaniment, ``Dec`` of the result estimates the remaining source.
    """
    return mix([z_mix, *z_others], [1.0] + [-1.0] * len(z_others))


def match_length(z: np.ndarray, frames: int) -> np.ndarray:
    """Trim ``z[F, C, D]`` to ``frames`` or pad it with zero frames (near-silence, see docs)."""
    if z.shape[0] >= frames:
        return z[:frames]
    pad = np.zeros((frames - z.shape[0], *z.shape[1:]), dtype=z.dtype)
    return np.concatenate([z, pad])
