"""Evaluation metrics of Lin-CAE (arXiv:2510.23530 Sec. 4) as pure torch functions.

Layouts:
    audio: ``[T]``, ``[B, T]`` or ``[B, C, T]``; a 1-D signal counts as a batch of one, and a
        2-D one as ``B`` mono items.
    latents: ``[B, ...]`` (e.g. ``[B, D, L]``); the batch dimension always comes first.

Every metric returns one value per item, shape ``[B]`` (waveform metrics: the mean over channels);
the caller averages over items. Arguments go estimate first, reference second (as auraloss). The
definitions follow the reference code (auraloss ``SNRLoss``/``SISDRLoss`` with ``zero_mean=False``,
``MultiResolutionSTFTLoss`` from ``get_mss_loss_args``), with spectral convergence per track. The
spectral distances (mel filterbank, MR-STFT, MSS) live in :mod:`lincae_core.evaluation.spectral` and are
re-exported here.
"""

from __future__ import annotations

import torch

from lincae_core.errors import ShapeMismatchError
from lincae_core.evaluation.spectral import (  # re-exported: the spectral half of the metrics
    _audio_pair,
    _check_pair,
    mel_filterbank,
    mrstft_distance,
    mss_distance,
    mss_resolutions,
)

__all__ = [
    "decoder_additivity",
    "decoder_homogeneity",
    "encoder_additivity_error",
    "encoder_homogeneity_error",
    "mel_filterbank",
    "mrstft_distance",
    "mss_distance",
    "mss_resolutions",
    "reconstruction_scores",
    "relative_error",
    "separation_scores",
    "si_sdr",
    "snr",
]


def snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Compute the SNR in dB (arXiv:2510.23530 Sec. 4.2) as auraloss SNRLoss, zero_mean=False.

    ``10·log10(Σ y² / (Σ (ŷ − y)² + eps) + eps)`` over time, per item and channel.

    Args:
        estimate: ŷ, audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        reference: y, same shape as ``estimate``.
        eps: Stabiliser added to the noise energy and to the ratio.

    Returns:
        SNR in dB, shape ``[B]`` (mean over channels).

    Raises:
        ShapeMismatchError: If the shapes differ or are not audio layouts.
    """
    y_hat, y = _audio_pair(estimate, reference)
    ratio = y.pow(2).sum(-1) / ((y_hat - y).pow(2).sum(-1) + eps)  # (B, C)
    return (10 * torch.log10(ratio + eps)).mean(-1)


def si_sdr(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    zero_mean: bool = False,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Compute the scale-invariant SDR (Le Roux et al., 2019) as auraloss SISDRLoss.

    ``α = ⟨ŷ, y⟩ / (‖y‖² + eps)``, ``s = α·y`` and ``10·log10(‖s‖² / (‖ŷ − s‖² + eps) + eps)``;
    the reference evaluation uses ``zero_mean=False`` (arXiv:2510.23530 Sec. 4.5).

    Args:
        estimate: ŷ, audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        reference: y, same shape as ``estimate``.
        zero_mean: Remove each signal's mean over time first.
        eps: Stabiliser, as in auraloss.

    Returns:
        SI-SDR in dB, shape ``[B]`` (mean over channels).

    Raises:
        ShapeMismatchError: If the shapes differ or are not audio layouts.
    """
    y_hat, y = _audio_pair(estimate, reference)
    if zero_mean:
        y_hat = y_hat - y_hat.mean(-1, keepdim=True)
        y = y - y.mean(-1, keepdim=True)
    alpha = (y_hat * y).sum(-1, keepdim=True) / (y.pow(2).sum(-1, keepdim=True) + eps)
    s = alpha * y  # (B, C, T)
    ratio = s.pow(2).sum(-1) / ((y_hat - s).pow(2).sum(-1) + eps)
    return (10 * torch.log10(ratio + eps)).mean(-1)


def relative_error(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Compute the relative L2 error of arXiv:2510.23530 Secs. 4.3-4.4, per item.

    ``‖ŷ − y‖₂ / (‖y‖₂ + eps)``, with norms over all dimensions but the first, as the reference
    code's ``relative_l2_error``.

    Args:
        estimate: ŷ, ``[B, ...]``.
        reference: y, same shape as ``estimate``.
        eps: Stabiliser added to the reference norm.

    Returns:
        Relative error, shape ``[B]``.

    Raises:
        ShapeMismatchError: If the shapes differ or the tensors have no batch dimension.
    """
    _check_pair(estimate, reference)
    if estimate.dim() < 2:
        raise ShapeMismatchError(
            f"Expected batched tensors [B, ...]. Got shape {tuple(estimate.shape)} instead."
        )
    dims = tuple(range(1, estimate.dim()))
    err = torch.linalg.vector_norm(estimate - reference, dim=dims)
    rel: torch.Tensor = err / (torch.linalg.vector_norm(reference, dim=dims) + eps)
    return rel


def encoder_homogeneity_error(
    z_of_scaled: torch.Tensor,
    z: torch.Tensor,
    a: float | torch.Tensor,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Compute the encoder homogeneity error, arXiv:2510.23530 Sec. 4.3 (Table 2 "Enc-Hom.").

    ``‖Enc(a·x) − a·Enc(x)‖₂ / ‖a·Enc(x)‖₂`` per item; 0 for a homogeneous encoder.

    Args:
        z_of_scaled: ``Enc(a·x)``, latents ``[B, ...]``.
        z: ``Enc(x)``, same shape.
        a: The gain, a float or one per item ``[B]``.
        eps: Stabiliser added to the reference norm.

    Returns:
        Relative error, shape ``[B]``.

    Raises:
        ShapeMismatchError: If the shapes differ or ``a`` is not a scalar or ``[B]``.
    """
    a_t = torch.as_tensor(a, dtype=z.dtype, device=z.device)
    if a_t.dim() > 1 or (a_t.dim() == 1 and a_t.shape[0] != z.shape[0]):
        raise ShapeMismatchError(
            f"Expected a scalar gain or one per item [{z.shape[0]}]. Got shape {tuple(a_t.shape)} instead."
        )
    a_t = a_t.reshape(-1, *([1] * (z.dim() - 1)))  # (B or 1, 1, ...)
    return relative_error(z_of_scaled, a_t * z, eps)


def encoder_additivity_error(
    z_mix: torch.Tensor, z_sources_sum: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Compute the encoder additivity error, arXiv:2510.23530 Sec. 4.4 (Table 1 "Error").

    ``‖Enc(mix) − Σᵢ Enc(sᵢ)‖₂ / ‖Enc(mix)‖₂`` per item; 0 for an additive encoder.

    Args:
        z_mix: ``Enc(mix)``, latents ``[B, ...]``.
        z_sources_sum: ``Σᵢ Enc(sᵢ)``, same shape.
        eps: Stabiliser added to the norm of ``z_mix``.

    Returns:
        Relative error, shape ``[B]``.

    Raises:
        ShapeMismatchError: If the shapes differ or the tensors have no batch dimension.
    """
    return relative_error(z_sources_sum, z_mix, eps)


def reconstruction_scores(
    estimate: torch.Tensor, reference: torch.Tensor, sample_rate: float
) -> dict[str, torch.Tensor]:
    """Score a reconstruction by SNR and MSS, arXiv:2510.23530 Sec. 4.2 (Tables 1-2 "Recon.").

    Args:
        estimate: The decoded audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        reference: The original audio, same shape.
        sample_rate: Sample rate in Hz.

    Returns:
        ``{"snr": [B], "mss": [B]}``.
    """
    return {"snr": snr(estimate, reference), "mss": mss_distance(estimate, reference, sample_rate)}


def decoder_homogeneity(
    dec_of_scaled_latent: torch.Tensor, scaled_dec: torch.Tensor, sample_rate: float
) -> dict[str, torch.Tensor]:
    """Score decoder homogeneity, arXiv:2510.23530 Sec. 4.3 (Table 2 "Dec-Hom.").

    Args:
        dec_of_scaled_latent: The estimate ``Dec(a·z_x)``, audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        scaled_dec: The reference ``a·Dec(z_x)``, same shape.
        sample_rate: Sample rate in Hz.

    Returns:
        ``{"snr": [B], "mss": [B]}``.
    """
    return reconstruction_scores(dec_of_scaled_latent, scaled_dec, sample_rate)


def decoder_additivity(
    dec_of_sum: torch.Tensor, dec_of_mix: torch.Tensor, sample_rate: float
) -> dict[str, torch.Tensor]:
    """Score decoder additivity (composability), arXiv:2510.23530 Sec. 4.4 (Table 1).

    Args:
        dec_of_sum: The estimate ``Dec(Σᵢ Enc(sᵢ))``, audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        dec_of_mix: The reference, the autoencoded mixture ``Dec(Enc(mix))``, same shape.
        sample_rate: Sample rate in Hz.

    Returns:
        ``{"snr": [B], "mss": [B]}``.
    """
    return reconstruction_scores(dec_of_sum, dec_of_mix, sample_rate)


def separation_scores(
    estimate: torch.Tensor, reference: torch.Tensor, sample_rate: float
) -> dict[str, torch.Tensor]:
    """Score latent-arithmetic separation, arXiv:2510.23530 Sec. 4.5 (Table 1 "Separation").

    Args:
        estimate: ``ŝᵢ = Dec(Enc(mix) − Enc(mix − sᵢ))``, audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        reference: The autoencoded source ``Dec(Enc(sᵢ))``, same shape.
        sample_rate: Sample rate in Hz.

    Returns:
        ``{"si_sdr": [B], "mss": [B]}``.
    """
    return {
        "si_sdr": si_sdr(estimate, reference),
        "mss": mss_distance(estimate, reference, sample_rate),
    }
