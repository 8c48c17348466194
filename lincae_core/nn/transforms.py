"""Waveform <-> consistency-model space (method.md section 1), as pure functions.

Layout: audio ``[B, T]``; representation ``[B, 2, F, N]`` with channel 0 the real and channel 1
the imaginary part of the amplitude-compressed STFT, ``F = 2*hop`` bins (Nyquist dropped) and
``N = floor((T - n_fft)/hop) + 1`` frames (no centering, no padding: frame n covers samples
``[hop*n, hop*n + n_fft)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lincae_core.config import ModelConfig

__all__ = [
    "decoded_length",
    "from_representation",
    "latent_length",
    "padded_length",
    "stft_frames",
    "synthesis_window",
    "to_representation",
]


def analysis_window(n_fft: int, device: torch.device | None = None) -> torch.Tensor:
    """Periodic Hann window, as ``torch.hann_window(n_fft)`` in the reference front end."""
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=torch.float32)


def synthesis_window(n_fft: int, hop: int, device: torch.device | None = None) -> torch.Tensor:
    """Inverse-STFT window w[n] / sum_k w^2[n + k*hop] (tf.signal.inverse_stft_window)."""
    w = analysis_window(n_fft, device)
    overlaps = -(-n_fft // hop)
    denom = F.pad(w**2, (0, overlaps * hop - n_fft)).reshape(overlaps, hop).sum(0)
    return w / denom.repeat(overlaps)[:n_fft]


def stft_frames(num_samples: int, cfg: ModelConfig) -> int:
    """Number of STFT frames of an unpadded signal: floor((T - n_fft)/hop) + 1."""
    return max((num_samples - cfg.n_fft) // cfg.hop + 1, 0)


def latent_length(num_samples: int, cfg: ModelConfig) -> int:
    """Latent frames the raw encoder gives for T samples (ceil per strided stage), method.md §1."""
    z = stft_frames(num_samples, cfg)
    for _ in range(cfg.freq_downsample.count(0)):
        z = (z - 1) // 2 + 1 if z > 0 else 0
    return z


def decoded_length(num_frames: int, cfg: ModelConfig) -> int:
    """Samples decoded from Z latent frames: (tdown*Z - 1)*hop + n_fft (= 4096 Z + 1536)."""
    return (cfg.time_downsample * num_frames - 1) * cfg.hop + cfg.n_fft


def padded_length(num_samples: int, cfg: ModelConfig) -> tuple[int, int]:
    """Frames Z = ceil(T / samples_per_frame) covering every sample, and the padded length.

    Padding T up to ``samples_per_frame*Z + n_fft - hop`` makes the STFT have exactly
    ``tdown*Z`` frames, so the encoder yields Z latents and decoding returns the same length.
    """
    z = max(math.ceil(num_samples / cfg.samples_per_frame), 1)
    return z, decoded_length(z, cfg)


def to_representation(x: torch.Tensor, cfg: ModelConfig, fast: bool = False) -> torch.Tensor:
    """Map audio to CM space: beta*|STFT|^alpha*e^{i angle} as real/imag planes (method.md §1).

    Args:
        x: audio ``[B, T]`` (float32), T >= n_fft.
        fast: Compute ``beta*|s|^(alpha-1)*s`` instead of going through ``angle``/``polar``: the
            same values without three transcendentals per bin (2.6x faster here), within float32
            rounding (~2e-7) rather than bit-identical to the reference; used by the encode fast
            path (channels-last), never by the bit-exact API.

    Returns:
        Representation ``[B, 2, F, N]``.
    """
    if x.dim() != 2 or x.shape[-1] < cfg.n_fft:
        raise ValueError(f"Expected audio [B, T] with T >= {cfg.n_fft}. Got {tuple(x.shape)}.")
    frames = x.float().unfold(-1, cfg.n_fft, cfg.hop)  # (B, N, n_fft)
    spec = torch.fft.rfft(frames * analysis_window(cfg.n_fft, x.device), dim=-1)
    spec = spec[..., : cfg.freq_bins].transpose(1, 2)  # (B, F, N)
    if fast:
        re, im = spec.real, spec.imag
        m2 = re * re + im * im  # |s|^2; a zero bin maps to zero, as polar(0, 0) does
        scale = torch.where(m2 > 0, cfg.beta * m2.pow((cfg.alpha - 1.0) / 2.0), torch.zeros_like(m2))
        return torch.stack((re * scale, im * scale), dim=1)
    spec = torch.polar(cfg.beta * spec.abs() ** cfg.alpha, spec.angle())
    return torch.stack((spec.real, spec.imag), dim=1)


def from_representation(rep: torch.Tensor, cfg: ModelConfig, clamp: bool = False) -> torch.Tensor:
    """Invert ``to_representation``: decompress, zero Nyquist bin, irfft, synthesis window, OLA.

    Args:
        rep: representation ``[B, 2, F, N]``.
        cfg: model config (hop, n_fft, alpha, beta).
        clamp: clamp the waveform to [-1, 1] (Music2Latent does; Lin-CAE does not).

    Returns:
        Audio ``[B, hop*(N-1) + n_fft]``.
    """
    spec = torch.complex(rep[:, 0].float(), rep[:, 1].float()) / cfg.beta  # (B, F, N)
    spec = torch.polar(spec.abs() ** (1.0 / cfg.alpha), spec.angle())
    spec = F.pad(spec, (0, 0, 0, 1))  # Nyquist bin back as zero
    frames = torch.fft.irfft(spec, n=cfg.n_fft, dim=1)  # (B, n_fft, N)
    frames = frames * synthesis_window(cfg.n_fft, cfg.hop, rep.device)[:, None]
    n = frames.shape[-1]
    length = cfg.hop * (n - 1) + cfg.n_fft
    out = F.fold(frames, output_size=(length, 1), kernel_size=(cfg.n_fft, 1), stride=(cfg.hop, 1))
    out = out.reshape(rep.shape[0], length)
    return out.clamp(-1.0, 1.0) if clamp else out
