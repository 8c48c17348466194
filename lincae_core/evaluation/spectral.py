"""Spectral distances of Lin-CAE's evaluation (arXiv:2510.23530 Sec. 4.2): mel filterbank, MR-STFT, MSS.

Layouts: audio ``[T]``, ``[B, T]`` or ``[B, C, T]`` (a 1-D signal is a batch of one, a 2-D one
``B`` mono items); every distance returns one value per item, ``[B]`` (the mean over channels).
Arguments go estimate first, reference second (as auraloss). Re-exported by
:mod:`lincae_core.evaluation.metrics`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from lincae_core.errors import ShapeMismatchError

__all__ = ["mel_filterbank", "mrstft_distance", "mss_distance", "mss_resolutions"]


def _as_bct(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return audio as ``[B, C, T]`` from ``[T]``, ``[B, T]`` or ``[B, C, T]``."""
    if x.dim() == 1:
        return x[None, None, :]
    if x.dim() == 2:
        return x[:, None, :]
    if x.dim() == 3:
        return x
    raise ShapeMismatchError(
        f"Expected {name} of shape [T], [B, T] or [B, C, T]. Got {tuple(x.shape)} instead."
    )


def _check_pair(estimate: torch.Tensor, reference: torch.Tensor) -> None:
    if estimate.shape != reference.shape:
        got = f"{tuple(estimate.shape)} and {tuple(reference.shape)}"
        raise ShapeMismatchError(f"Expected estimate and reference of one shape. Got {got} instead.")


def _audio_pair(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, ...]:
    _check_pair(estimate, reference)
    return _as_bct(estimate, "estimate"), _as_bct(reference, "reference")


def _slaney_mel_frequencies(f_max: float, n: int) -> npt.NDArray[np.float64]:
    """Return ``n`` frequencies (Hz) evenly spaced on the Slaney mel scale from 0 to ``f_max``."""
    # Slaney (1998): 200/3 Hz per mel below 1 kHz, log steps of ln(6.4)/27 above (librosa htk=False).
    f_sp, logstep = 200.0 / 3, np.log(6.4) / 27.0
    min_log_mel = 1000.0 / f_sp
    mel_max = f_max / f_sp if f_max < 1000.0 else min_log_mel + np.log(f_max / 1000.0) / logstep
    mels = np.linspace(0.0, mel_max, n)
    freqs = f_sp * mels
    above = mels >= min_log_mel
    freqs[above] = 1000.0 * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


@functools.lru_cache(maxsize=32)
def _mel_filterbank_np(sample_rate: float, n_fft: int, n_mels: int) -> npt.NDArray[np.float32]:
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (F,)
    mel_f = _slaney_mel_frequencies(sample_rate / 2.0, n_mels + 2)  # (n_mels + 2,)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)  # (n_mels + 2, F)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # librosa stores the triangles in float32 before the Slaney area normalisation.
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_f[2:] - mel_f[:-2])
    out: npt.NDArray[np.float32] = (weights * enorm[:, None]).astype(np.float32)
    out.setflags(write=False)
    return out


def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int = 80) -> torch.Tensor:
    """Build the Slaney mel filterbank (Slaney, 1998) of librosa.filters.mel, htk=False.

    Equal to ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)``: triangles
    between 0 Hz and Nyquist on the Slaney mel scale, area-normalised (``norm='slaney'``).

    Args:
        sample_rate: Sample rate in Hz.
        n_fft: FFT size; the filterbank has ``n_fft // 2 + 1`` columns.
        n_mels: Number of mel bands.

    Returns:
        float32 tensor ``[n_mels, n_fft // 2 + 1]`` (a fresh copy; the array is cached).

    Raises:
        ValueError: If an argument is not positive.
    """
    if sample_rate <= 0 or n_fft <= 0 or n_mels <= 0:
        raise ValueError(
            "Expected positive sample_rate, n_fft and n_mels. "
            f"Got {sample_rate}, {n_fft} and {n_mels} instead."
        )
    return torch.tensor(_mel_filterbank_np(float(sample_rate), int(n_fft), int(n_mels)))


def _stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Return ``√clamp(re² + im², 1e-8)`` of a centred, reflect-padded STFT: (N, T) → (N, F, L)."""
    window = torch.hann_window(win, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x,
        n_fft,
        hop_length=hop,
        win_length=win,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return torch.sqrt(torch.clamp(spec.real.pow(2) + spec.imag.pow(2), min=1e-8))


def mrstft_distance(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    fft_sizes: Sequence[int],
    hop_sizes: Sequence[int],
    win_lengths: Sequence[int],
    sample_rate: float | None = None,
    n_mels: int | None = None,
    w_sc: float = 1.0,
    w_log: float = 1.0,
) -> torch.Tensor:
    """Compute the multi-resolution STFT distance (Yamamoto et al., 2019) as auraloss, per item.

    For each resolution: ``w_sc·‖M_y − M_ŷ‖_F / ‖M_y‖_F + w_log·mean|ln M_ŷ − ln M_y|`` with
    ``M`` the (optionally mel-projected) STFT magnitude; the resolutions are averaged. Unlike
    auraloss, spectral convergence is per item and channel, not over the whole batch.

    Args:
        estimate: ŷ, audio ``[T]``, ``[B, T]`` or ``[B, C, T]``.
        reference: y, same shape as ``estimate``.
        fft_sizes: FFT size of each resolution.
        hop_sizes: Hop of each resolution, in samples.
        win_lengths: Periodic Hann window length of each resolution, in samples.
        sample_rate: Sample rate in Hz; needed only with ``n_mels``.
        n_mels: Number of mel bands, or ``None`` for linear-frequency magnitudes.
        w_sc: Weight of spectral convergence.
        w_log: Weight of the log-magnitude L1 term.

    Returns:
        Distance, shape ``[B]`` (mean over channels).

    Raises:
        ShapeMismatchError: If the shapes differ or are not audio layouts.
        ValueError: If the resolutions disagree, the signal is too short for the reflect padding,
            or ``n_mels`` is given without ``sample_rate``.
    """
    y_hat, y = _audio_pair(estimate, reference)
    n_batch, n_chan, n_time = y.shape
    if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
        raise ValueError(
            "Expected fft_sizes, hop_sizes and win_lengths of one non-zero length. "
            f"Got {len(fft_sizes)}, {len(hop_sizes)} and {len(win_lengths)} instead."
        )
    if n_mels is not None and sample_rate is None:
        raise ValueError("Expected a sample_rate with n_mels. Got None instead.")
    if n_time <= max(fft_sizes) // 2:
        raise ValueError(
            f"Expected more than {max(fft_sizes) // 2} samples for the reflect padding. Got {n_time} instead."
        )
    y_hat, y = y_hat.reshape(-1, n_time), y.reshape(-1, n_time)  # (B*C, T)
    total = y.new_zeros(n_batch * n_chan)
    for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
        m_hat = _stft_magnitude(y_hat, n_fft, hop, win)  # (B*C, F, L)
        m = _stft_magnitude(y, n_fft, hop, win)
        if n_mels is not None:
            assert sample_rate is not None, "checked above"
            fb = mel_filterbank(sample_rate, n_fft, n_mels).to(m)  # (n_mels, F)
            m_hat, m = fb @ m_hat, fb @ m  # (B*C, n_mels, L)
        sc = torch.linalg.vector_norm(m - m_hat, dim=(-2, -1)) / torch.linalg.vector_norm(m, dim=(-2, -1))
        log_l1 = (torch.log(m_hat) - torch.log(m)).abs().mean(dim=(-2, -1))
        total = total + w_sc * sc + w_log * log_l1
    return (total / len(fft_sizes)).reshape(n_batch, n_chan).mean(-1)


def mss_resolutions(
    sample_rate: float, windows_ms: Sequence[float] = (10, 25, 50)
) -> tuple[tuple[int, int, int], ...]:
    """Return the MSS (window, FFT size, hop) triples of arXiv:2510.23530 Sec. 4.2, footnote 3.

    As the reference ``get_mss_loss_args``: ``win = int(sr·ms/1000)``, FFT size the next power
    of two ≥ win, hop ``win // 2``; at 44.1 kHz (441, 512, 220), (1102, 2048, 551) and
    (2205, 4096, 1102). The footnote's "hop lengths of ≈ 10, 25 and 50 ms" are these windows.

    Args:
        sample_rate: Sample rate in Hz.
        windows_ms: Window durations in milliseconds.

    Returns:
        One ``(win_length, n_fft, hop)`` triple per window, in samples.

    Raises:
        ValueError: If a window is shorter than two samples.
    """
    out = []
    for ms in windows_ms:
        win = int(sample_rate * ms / 1000)
        if win < 2:
            raise ValueError(
                f"Expected windows of at least 2 samples. Got {win} for {ms} ms at {sample_rate} Hz."
            )
        out.append((win, 1 << (win - 1).bit_length(), win // 2))
    return tuple(out)


def mss_distance(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    sample_rate: float = 44100,
    windows_ms: Sequence[float] = (10, 25, 50),
    n_mels: int = 80,
) -> torch.Tensor:
    """Compute the multi-scale mel spectral distance MSS of arXiv:2510.23530 Sec. 4.2.

    The mean over the :func:`mss_resolutions` of ``SC + mean|ln M_ŷ − ln M_y|`` on Slaney mel
    magnitudes (``w_sc = w_log = 1``, the auraloss defaults the reference code keeps), with
    spectral convergence per track.

    Args:
        estimate: ŷ, audio ``[T]``, ``[B, T]`` or ``[B, C, T]`` at ``sample_rate``.
        reference: y, same shape as ``estimate``.
        sample_rate: Sample rate in Hz.
        windows_ms: Window durations in milliseconds.
        n_mels: Number of mel bands.

    Returns:
        MSS, shape ``[B]`` (mean over channels); 0 for identical signals.

    Raises:
        ShapeMismatchError: If the shapes differ or are not audio layouts.
        ValueError: If the signal is shorter than half the largest FFT size.
    """
    wins, ffts, hops = zip(*mss_resolutions(sample_rate, windows_ms), strict=True)
    return mrstft_distance(estimate, reference, ffts, hops, wins, sample_rate=sample_rate, n_mels=n_mels)
