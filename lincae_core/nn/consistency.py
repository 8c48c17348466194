"""Consistency-model math as pure functions (method.md sections 2-4).

Shapes: ``sigma`` is ``[B]``; representations are ``[B, 2, F, N]``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "consistency_loss",
    "delta_t",
    "loss_weight",
    "pseudo_huber",
    "sample_t",
    "sampler_sigmas",
    "scalings",
    "sigma_from_index",
    "sigma_from_t",
]


def sigma_from_t(
    t: torch.Tensor | float, sigma_min: float, sigma_max: float, rho: float
) -> torch.Tensor | float:
    """Karras et al. (2022) rho-schedule: (s_min^(1/rho) + t (s_max^(1/rho) - s_min^(1/rho)))^rho."""
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (lo + t * (hi - lo)) ** rho


def sigma_from_index(i: int, k: int, sigma_min: float, sigma_max: float, rho: float) -> float:
    """Noise level of discrete index i in [1, k] on the rho-grid (Music2Latent ``get_sigma``)."""
    return float(sigma_from_t((i - 1) / (k - 1), sigma_min, sigma_max, rho))


def scalings(
    sigma: torch.Tensor, sigma_data: float, sigma_min: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Consistency-model scalings with the sigma_min boundary condition (Song et al., 2023).

    c_skip = s_d^2 / ((s - s_min)^2 + s_d^2), c_out = s_d (s - s_min) / sqrt(s_d^2 + s^2),
    c_in = 1 / sqrt(s^2 + s_d^2); at s = s_min, c_skip = 1 and c_out = 0.

    Returns:
        (c_skip, c_out, c_in), each ``[B, 1, 1, 1]``.
    """
    s = sigma.reshape(-1, 1, 1, 1)
    c_skip = sigma_data**2 / ((s - sigma_min) ** 2 + sigma_data**2)
    c_out = sigma_data * (s - sigma_min) / (sigma_data**2 + s**2) ** 0.5
    c_in = 1.0 / (s**2 + sigma_data**2) ** 0.5
    return c_skip, c_out, c_in


def sampler_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """Noise levels of N-step consistency sampling: get_sigma(N+1-k, N+1), k = 0..N (method.md §4).

    The first N are the denoising levels, the last the level re-noised to after the final
    step (unused). N=1 -> [80, 0.002]; N=2 -> [80, 2.515, 0.002].
    """
    if steps < 1:
        raise ValueError(f"Expected steps >= 1. Got {steps}.")
    return [sigma_from_index(steps + 1 - k, steps + 1, sigma_min, sigma_max, rho) for k in range(steps + 1)]


def delta_t(step: int, total_steps: int, end_exp: float = 2.0, base: float = 0.1) -> float:
    """Exponential Delta-t schedule 0.1^(1 + (e_K - 1) k/K) of iCT (method.md §3); k capped at K."""
    k = min(max(step, 0), total_steps)
    return base ** (1.0 + (end_exp - 1.0) * k / total_steps)


def _lognormal_grid_weights(
    sigma_min: float, sigma_max: float, rho: float, p_mean: float, p_std: float, grid: int
) -> torch.Tensor:
    t = torch.arange(grid - 1, dtype=torch.float64) / (grid - 1)
    log_sigma = torch.log(torch.as_tensor(sigma_from_t(t, sigma_min, sigma_max, rho)))
    return torch.exp(-0.5 * ((log_sigma - p_mean) / p_std) ** 2) / (p_std * math.sqrt(2 * math.pi))


def sample_t(
    batch: int,
    generator: torch.Generator,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    p_mean: float = -1.1,
    p_std: float = 2.0,
    grid: int = 10000,
) -> torch.Tensor:
    """Lognormal t sampling on the rho-grid (Song & Dhariwal, 2023; method.md §3).

    Draws j ~ Multinomial(pdf(log sigma(t_j))) over t_j = j/(K-1), j < K-1, then
    t = (j + U[0,1)) / (K-1).

    Returns:
        t ``[B]`` in [0, 1) (float32).
    """
    w = _lognormal_grid_weights(sigma_min, sigma_max, rho, p_mean, p_std, grid)
    j = torch.multinomial(w, batch, replacement=True, generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return ((j.double() + u) / (grid - 1)).float()


def loss_weight(sigma_student: torch.Tensor, sigma_teacher: torch.Tensor) -> torch.Tensor:
    """lambda = 1 / (sigma_2 - sigma_1) (Song & Dhariwal, 2023), NaN/inf replaced by 0."""
    w = 1.0 / (sigma_student - sigma_teacher)
    return torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0)


def pseudo_huber(diff: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """Per-sample pseudo-Huber sqrt(||d||^2 + c^2) - c, c = 5.4e-4 sqrt(D) (method.md §3, item 3)."""
    d = diff.flatten(1)
    if c is None:
        c = 0.00054 * math.sqrt(d.shape[1])
    return torch.sqrt(d.float().pow(2).sum(1) + c**2) - c


def consistency_loss(
    f_student: torch.Tensor,
    f_teacher: torch.Tensor,
    sigma_student: torch.Tensor,
    sigma_teacher: torch.Tensor,
) -> torch.Tensor:
    """Improved consistency-training loss mean_i lambda_i * pseudo_huber(f_s - f_t) (iCT, 2023)."""
    per_item = loss_weight(sigma_student, sigma_teacher) * pseudo_huber(f_student - f_teacher.detach())
    return torch.nan_to_num(per_item, nan=0.0).mean()
