"""The Lin-CAE implicit-linearity augmentations (arXiv:2510.23530, Sec. 3.2-3.3), as pure functions.

Every random draw goes through an explicit ``torch.Generator``. Layouts: audio ``[B, T]``, gains
and mixture weights ``[B]``, latents ``[B, D, Z]``.

Per training step (method.md section 3.1), for a waveform batch ``x`` of B items:

1. mixtures ``m_i = w_i·x_i + w'_i·x_{i−1}`` (circular roll by one; convex ``w ~ U[0.5, 1]``,
   ``w' = 1 − w`` by default, or the paper's plain sum ``w = w' = 1``), ``x_aug = [x; m]``;
2. gains ``a ~ U[a_min(k), a_max(k)]`` for every element of ``x_aug``, kept with probability 0.8
   (else 1), ``|a| < 0.05 → 0``, capped so that ``max|a·x_aug_i| ≤ 1``;
3. the encoder sees the *unscaled* ``x``; the denoiser's target is ``T(a·x_aug)`` and its
   conditioning latent ``a·z'``, with ``z'`` of a mixture the same mix of its sources' latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lincae_core.config import TrainConfig

__all__ = [
    "AugmentedBatch",
    "anneal_factor",
    "augment_batch",
    "cap_gains",
    "conditioning_latents",
    "gain_range",
    "mix_pairs",
    "mixit",
    "mixture_weights",
    "sample_gains",
]


def anneal_factor(step: int, total_steps: int) -> float:
    """Piecewise-cosine gain annealing C(k) (arXiv:2510.23530, Sec. 3.3).

    1 for k ≤ 0.2K, 0 for k ≥ 0.9K, and ½(1 + cos(π (k − 0.2K) / 0.7K)) in between.
    """
    start, stop = 0.2 * total_steps, 0.9 * total_steps
    if step <= start:
        return 1.0
    if step >= stop:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - start) / (stop - start)))


def gain_range(step: int, total_steps: int, anneal: bool = True) -> tuple[float, float]:
    """Gain bounds a_min(k) = 1 − C(k), a_max(k) = 1 + 2 C(k) (arXiv:2510.23530, Sec. 3.3).

    The paper prints ``a_min(k) = 1 − ·C(k)``; the reference code has ``1 − C(k)``. Without
    annealing (the reference's second model, ``lin-cae-2``) the range stays ``(0, 3)``.

    Returns:
        ``(a_min, a_max)``.
    """
    c = anneal_factor(step, total_steps) if anneal else 1.0
    return 1.0 - c, 1.0 + 2.0 * c


def sample_gains(
    n: int,
    a_min: float,
    a_max: float,
    generator: torch.Generator,
    prob: float = 0.8,
    zero_below: float = 0.05,
) -> torch.Tensor:
    """Draw the implicit-homogeneity gains a ~ U[a_min, a_max] (arXiv:2510.23530, Sec. 3.3).

    Each gain is kept with probability ``prob`` (else 1); ``|a| < zero_below`` becomes 0.

    Returns:
        Gains ``[n]`` (float32), not yet capped (see ``cap_gains``).
    """
    a = a_min + (a_max - a_min) * torch.rand(n, generator=generator)
    a = torch.where(a.abs() < zero_below, torch.zeros_like(a), a)
    keep = torch.rand(n, generator=generator) < prob
    return torch.where(keep, a, torch.ones_like(a))


def cap_gains(a: torch.Tensor, x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Clip gains so the scaled waveform's peak stays ≤ 1 (arXiv:2510.23530, Sec. 3.3).

    ``a ← sign(a)·min(|a|, 1/(max|x_i| + eps))``, applied to every element, so it also shrinks
    ``a = 1`` for a mixture whose peak exceeds 1 (method.md section 3.1, item 2).

    Args:
        a: gains ``[B]``.
        x: audio ``[B, T]``.

    Returns:
        Capped gains ``[B]``.
    """
    peak = x.abs().amax(dim=-1).to(a.dtype)
    return torch.sign(a) * torch.minimum(a.abs(), 1.0 / (peak + eps))


def mixture_weights(
    n: int, generator: torch.Generator, mode: str = "convex", low: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw mixture weights (w, w') of the implicit-additivity mixtures (arXiv:2510.23530, Sec. 3.2).

    ``"convex"`` (reference code): w ~ U[low, 1], w' = 1 − w. ``"sum"`` (paper, Sec. 3.2:
    ``z' = z_u + z_v``): w = w' = 1, and no random draw.

    Returns:
        ``(w, w')``, each ``[n]``.
    """
    if mode == "sum":
        ones = torch.ones(n)
        return ones, ones.clone()
    if mode != "convex":
        raise ValueError(f"Expected mix mode 'convex' or 'sum'. Got {mode!r} instead.")
    w = low + (1.0 - low) * torch.rand(n, generator=generator)
    return w, 1.0 - w


def mix_pairs(v: torch.Tensor, w: torch.Tensor, w_prev: torch.Tensor) -> torch.Tensor:
    """Mix each item with its circular predecessor: w_i·v_i + w'_i·v_{i−1} (arXiv:2510.23530, Fig. 2d).

    The same function mixes waveforms ``[B, T]`` and latents ``[B, D, Z]``, so a mixture's
    conditioning latent is exactly the mix of its sources' latents.

    Args:
        v: a batch ``[B, ...]``.
        w: weight of item i ``[B]``.
        w_prev: weight of item i−1 ``[B]`` (item 0 pairs with item B−1).

    Returns:
        Mixtures ``[B, ...]``.
    """
    shape = (-1,) + (1,) * (v.dim() - 1)
    w, w_prev = w.to(v).reshape(shape), w_prev.to(v).reshape(shape)
    return w * v + w_prev * torch.roll(v, shifts=1, dims=0)


def mixit(x: torch.Tensor, generator: torch.Generator, prob: float = 0.5) -> torch.Tensor:
    """Music2Latent mixit augmentation: with probability p, x_i ← (x_i + x_perm(i))/2 (method.md §3).

    The baseline of the reference code (config ``m2l``) uses it with p = 0.5; it is plain data
    augmentation (the encoder sees the mixture, and its latent is the mixture's own).

    Args:
        x: audio ``[B, T]``.

    Returns:
        Audio ``[B, T]``.
    """
    perm = torch.randperm(x.shape[0], generator=generator)
    mask = (torch.rand(x.shape[0], generator=generator) < prob).to(x.device)
    return torch.where(mask[:, None], 0.5 * (x + x[perm.to(x.device)]), x)


@dataclass(frozen=True)
class AugmentedBatch:
    """One augmented training batch (arXiv:2510.23530, Fig. 2d).

    Attributes:
        x: what the encoder sees: the unscaled source items ``[B, T]``.
        x_aug: unscaled items then mixtures ``[N, T]`` (N = 2B with additivity, else B).
        a: gains ``[N]`` (ones without homogeneity).
        w: mixture weights of item i ``[B]`` (None without additivity).
        w_prev: mixture weights of item i−1 ``[B]`` (None without additivity).
        encode_aug: the encoder sees ``x_aug`` itself, mixtures included, and no latent is mixed
            (the official Music2Latent baseline, ``baseline_mixtures``).
    """

    x: torch.Tensor
    x_aug: torch.Tensor
    a: torch.Tensor
    w: torch.Tensor | None = None
    w_prev: torch.Tensor | None = None
    encode_aug: bool = False

    @property
    def encoder_input(self) -> torch.Tensor:
        """What the encoder sees: ``x`` (Lin-CAE: mixture latents are mixed) or ``x_aug``."""
        return self.x_aug if self.encode_aug else self.x

    @property
    def target(self) -> torch.Tensor:
        """The waveforms the denoiser must reproduce, ``a·x_aug`` ``[N, T]``."""
        return self.a.to(self.x_aug)[:, None] * self.x_aug


def augment_batch(x: torch.Tensor, cfg: TrainConfig, step: int, generator: torch.Generator) -> AugmentedBatch:
    """Build the Lin-CAE training batch: mixtures, then capped gains (arXiv:2510.23530, Sec. 3.2-3.3).

    Draw order (fixed, for bit-exact resumes): mixit (baseline only), mixture weights, gains.

    Args:
        x: audio crops ``[B, T]``.
        cfg: the switches (``additivity``, ``homogeneity``, ``mix_weights``, ``anneal``,
            ``gain_prob``, ``use_mixit``/``mixit_prob``) and ``total_steps``.
        step: global training step k (drives the annealing).
        generator: the source of every random draw.
    """
    if cfg.use_mixit:
        x = mixit(x, generator, cfg.mixit_prob)
    w = w_prev = None
    x_aug = x
    if cfg.additivity:
        w, w_prev = mixture_weights(x.shape[0], generator, cfg.mix_weights)
        x_aug = torch.cat([x, mix_pairs(x, w, w_prev)], dim=0)  # (2B, T)
    elif cfg.use_baseline_mixtures:  # official m2l: B convex mixtures, encoded as they are
        bw, bw_prev = mixture_weights(x.shape[0], generator, "convex")
        x_aug = torch.cat([x, mix_pairs(x, bw, bw_prev)], dim=0)  # (2B, T)
    if cfg.homogeneity:
        a_min, a_max = gain_range(step, cfg.total_steps, cfg.anneal)
        a = sample_gains(x_aug.shape[0], a_min, a_max, generator, cfg.gain_prob)
        a = cap_gains(a, x_aug.cpu())
    else:
        a = torch.ones(x_aug.shape[0])
    return AugmentedBatch(
        x=x,
        x_aug=x_aug,
        a=a.to(x.device),
        w=w,
        w_prev=w_prev,
        encode_aug=not cfg.additivity and cfg.use_baseline_mixtures,
    )


def conditioning_latents(z: torch.Tensor, batch: AugmentedBatch) -> torch.Tensor:
    """Conditioning latents a·z' of the denoiser (arXiv:2510.23530, Eq. 4).

    ``z'`` is the item's own latent, or for a mixture the same mix of its sources' latents
    (``z_u + z_v`` in the paper; the convex mix in the reference code).

    Args:
        z: latents of the unscaled source items ``[B, D, Z]``.
        batch: the augmented batch that ``z`` was encoded from.

    Returns:
        Latents ``[N, D, Z]``.
    """
    if batch.w is not None and batch.w_prev is not None:
        z = torch.cat([z, mix_pairs(z, batch.w, batch.w_prev)], dim=0)
    return batch.a.to(z)[:, None, None] * z
