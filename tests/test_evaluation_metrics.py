"""lincae_core.evaluation.metrics against auraloss, torchmetrics and librosa; their properties."""

from __future__ import annotations

import math
from collections.abc import Callable

import auraloss
import pytest
import torch
from torchmetrics.functional.audio import (
    scale_invariant_signal_distortion_ratio,
    signal_noise_ratio,
)

from lincae_core.errors import ShapeMismatchError
from lincae_core.evaluation import metrics

SR = 44100
N_SAMPLES = 11025  # 0.25 s: longer than half the largest FFT (4096) at 44.1 kHz


def _signals(
    shape: tuple[int, ...], dtype: torch.dtype = torch.float64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a seeded (estimate, reference) pair: tones plus noise, and a distorted copy."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(shape[-1], dtype=torch.float64) / SR
    freqs = torch.rand(*shape[:-1], 3, 1, generator=g, dtype=torch.float64) * 4000 + 50
    y = torch.sin(2 * math.pi * freqs * t).sum(-2) * 0.2
    y = y + 0.05 * torch.randn(shape, generator=g, dtype=torch.float64)
    y_hat = 0.8 * y + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    return y_hat.to(dtype), y.to(dtype)


# --- SNR and SI-SDR -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, N_SAMPLES), (2, 2, 4000)])
def test_snr_matches_auraloss_and_torchmetrics(shape: tuple[int, ...]) -> None:
    y_hat, y = _signals(shape)
    ours = metrics.snr(y_hat, y)
    aura = -auraloss.time.SNRLoss(zero_mean=False, reduction="none")(y_hat, y)
    tm = signal_noise_ratio(y_hat, y, zero_mean=False)
    if len(shape) == 3:
        aura, tm = aura.mean(-1), tm.mean(-1)
    assert ours.shape == (shape[0],)
    torch.testing.assert_close(ours, aura, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours, tm, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, N_SAMPLES), (2, 2, 4000)])
def test_si_sdr_matches_auraloss_and_torchmetrics(shape: tuple[int, ...]) -> None:
    y_hat, y = _signals(shape, seed=1)
    ours = metrics.si_sdr(y_hat, y)
    aura = -auraloss.time.SISDRLoss(zero_mean=False, reduction="none")(y_hat, y)
    tm = scale_invariant_signal_distortion_ratio(y_hat, y, zero_mean=False)
    if len(shape) == 3:
        aura, tm = aura.mean(-1), tm.mean(-1)
    torch.testing.assert_close(ours, aura, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours, tm, rtol=0, atol=1e-6)


def test_si_sdr_zero_mean_matches_torchmetrics() -> None:
    y_hat, y = _signals((2, 4000), seed=2)
    y_hat, y = y_hat + 0.3, y - 0.1
    tm = scale_invariant_signal_distortion_ratio(y_hat, y, zero_mean=True)
    torch.testing.assert_close(metrics.si_sdr(y_hat, y, zero_mean=True), tm, rtol=0, atol=1e-6)


def test_snr_of_identical_signals_is_large() -> None:
    _, y = _signals((2, 4000))
    assert (metrics.snr(y, y) > 80).all()


@pytest.mark.parametrize("c", [0.3, 4.0, -2.0])
def test_si_sdr_is_invariant_to_scaling_the_estimate(c: float) -> None:
    y_hat, y = _signals((3, 4000), seed=3)
    torch.testing.assert_close(metrics.si_sdr(c * y_hat, y), metrics.si_sdr(y_hat, y))


def test_snr_is_not_scale_invariant() -> None:
    y_hat, y = _signals((2, 4000), seed=4)
    assert (metrics.snr(0.1 * y_hat, y) < metrics.snr(y_hat, y)).all()


# --- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [metrics.snr, metrics.si_sdr])
def test_waveform_metric_shapes(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    y_hat, y = _signals((2, 3, 4000))
    per_channel = torch.stack([fn(y_hat[:, c], y[:, c]) for c in range(3)], -1)  # (B, C)
    torch.testing.assert_close(fn(y_hat, y), per_channel.mean(-1))
    assert fn(y_hat[0, 0], y[0, 0]).shape == (1,)
    assert fn(y_hat[:, 0], y[:, 0]).shape == (2,)


def test_shape_errors() -> None:
    y_hat, y = _signals((2, 4000))
    with pytest.raises(ShapeMismatchError, match="Expected estimate and reference"):
        metrics.snr(y_hat, y[:1])
    with pytest.raises(ShapeMismatchError, match=r"\[B, C, T\]"):
        metrics.si_sdr(y_hat[None, None], y[None, None])
    with pytest.raises(ValueError, match="reflect padding"):
        metrics.mss_distance(y_hat[:, :1000], y[:, :1000], SR)
    with pytest.raises(ShapeMismatchError, match="batched"):
        metrics.relative_error(y[0], y[0])


# --- mel filterbank -------------------------------------------------------------------------


@pytest.mark.parametrize(("sr", "n_fft"), [(44100, 512), (44100, 4096), (16000, 256)])
def test_mel_filterbank_matches_librosa(sr: int, n_fft: int) -> None:
    librosa = pytest.importorskip("librosa")
    expected = torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=80))
    fb = metrics.mel_filterbank(sr, n_fft, 80)
    assert fb.dtype == torch.float32
    torch.testing.assert_close(fb, expected, rtol=1e-6, atol=1e-9)


def test_mel_filterbank_slaney_formula() -> None:
    # Hand-written Slaney scale: 200/3 Hz per mel below 1 kHz, log step ln(6.4)/27 above.
    sr, n_fft, n_mels = 44100, 4096, 80
    fb = metrics.mel_filterbank(sr, n_fft, n_mels).double()
    assert fb.shape == (n_mels, n_fft // 2 + 1)
    assert (fb >= 0).all()
    assert (fb.sum(-1) > 0).all()

    def hz_to_mel(f: float) -> float:
        return f * 3 / 200 if f < 1000 else 15 + math.log(f / 1000) * 27 / math.log(6.4)

    def mel_to_hz(m: float) -> float:
        return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    mel_max = hz_to_mel(sr / 2)
    edges = [mel_to_hz(mel_max * i / (n_mels + 1)) for i in range(n_mels + 2)]
    bin_hz = sr / n_fft
    for i in (0, 10, 40, 79):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        k = int(mid / bin_hz)  # the bin just below the centre
        f = k * bin_hz
        tri = (f - lo) / (mid - lo) if f <= mid else (hi - f) / (hi - mid)
        expected = max(tri, 0.0) * 2 / (hi - lo)  # Slaney area normalisation
        assert fb[i, k].item() == pytest.approx(expected, rel=1e-5)
    # Area normalisation: a wide triangle's discrete area is close to 1.
    assert (fb[40:].sum(-1) * bin_hz).sub(1).abs().max() < 1e-2


def test_mel_filterbank_returns_a_copy() -> None:
    fb = metrics.mel_filterbank(SR, 512)
    fb.zero_()
    assert metrics.mel_filterbank(SR, 512).sum() > 0


# --- multi-resolution STFT and MSS ----------------------------------------------------------


def test_mss_resolutions_match_the_reference_table() -> None:
    assert metrics.mss_resolutions(44100) == ((441, 512, 220), (1102, 2048, 551), (2205, 4096, 1102))
    assert metrics.mss_resolutions(16000) == ((160, 256, 80), (400, 512, 200), (800, 1024, 400))


def _auraloss_per_item(loss: torch.nn.Module, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Run auraloss one item and channel at a time (its SC is batch-wide), mean over channels."""
    out = [
        [loss(y_hat[b, c][None, None], y[b, c][None, None]) for c in range(y.shape[1])]
        for b in range(y.shape[0])
    ]
    return torch.tensor(out, dtype=y.dtype).mean(-1)


def test_linear_mrstft_matches_auraloss() -> None:
    y_hat, y = _signals((2, 1, N_SAMPLES), dtype=torch.float32, seed=5)
    ffts, hops, wins = [512, 2048, 4096], [220, 551, 1102], [441, 1102, 2205]
    ref = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=ffts, hop_sizes=hops, win_lengths=wins, w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0
    )
    ours = metrics.mrstft_distance(y_hat, y, ffts, hops, wins)
    torch.testing.assert_close(ours, _auraloss_per_item(ref, y_hat, y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sr", [44100, 16000])
def test_mss_matches_auraloss_mel(sr: int) -> None:
    pytest.importorskip("librosa")  # auraloss builds its mel filterbank with librosa
    y_hat, y = _signals((2, 2, N_SAMPLES), dtype=torch.float32, seed=6)
    wins, ffts, hops = (list(v) for v in zip(*metrics.mss_resolutions(sr), strict=True))
    ref = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=ffts,
        hop_sizes=hops,
        win_lengths=wins,
        scale="mel",
        n_bins=80,
        sample_rate=sr,
        perceptual_weighting=False,
        w_sc=1.0,
        w_log_mag=1.0,
        w_lin_mag=0.0,
    )
    ours = metrics.mss_distance(y_hat, y, sample_rate=sr)
    assert ours.shape == (2,)
    torch.testing.assert_close(ours, _auraloss_per_item(ref, y_hat, y), rtol=1e-5, atol=1e-6)


def test_mss_spectral_convergence_is_per_item() -> None:
    y_hat, y = _signals((2, N_SAMPLES), seed=7)
    # A loud, well-estimated item must not drown the SC of a quiet, badly estimated one.
    y_hat[0] = y_hat[0] + torch.randn(N_SAMPLES, generator=torch.Generator().manual_seed(7))
    y, y_hat = y * torch.tensor([[1.0], [100.0]]), y_hat * torch.tensor([[1.0], [100.0]])
    batched = metrics.mss_distance(y_hat, y, SR)
    single = torch.cat([metrics.mss_distance(y_hat[i], y[i], SR) for i in range(2)])
    torch.testing.assert_close(batched, single)


def test_mss_of_identical_signals_is_zero() -> None:
    _, y = _signals((2, N_SAMPLES))
    assert torch.equal(metrics.mss_distance(y, y, SR), torch.zeros(2, dtype=y.dtype))
    assert (metrics.mss_distance(*_signals((2, N_SAMPLES)), SR) > 0).all()


# --- encoder linearity errors ---------------------------------------------------------------


def _linear_encoder(x: torch.Tensor) -> torch.Tensor:
    w = torch.randn(16, 8 * 4, generator=torch.Generator().manual_seed(8), dtype=x.dtype)
    return (x @ w).reshape(x.shape[0], 8, 4)  # (B, D, L)


def test_encoder_homogeneity_error_is_zero_for_a_linear_encoder() -> None:
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for a in (0.5, torch.tensor([0.25, 1.1, 3.0], dtype=torch.float64)):
        a_col = torch.as_tensor(a, dtype=x.dtype).reshape(-1, 1)
        err = metrics.encoder_homogeneity_error(_linear_encoder(a_col * x), _linear_encoder(x), a)
        assert err.shape == (3,)
        assert err.abs().max() < 1e-12


def test_encoder_homogeneity_error_of_a_nonlinear_encoder() -> None:
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    z, z_scaled = torch.tanh(_linear_encoder(x)), torch.tanh(_linear_encoder(3 * x))
    err = metrics.encoder_homogeneity_error(z_scaled, z, 3.0)
    expected = (z_scaled - 3 * z).flatten(1).norm(dim=1) / (3 * z).flatten(1).norm(dim=1)
    torch.testing.assert_close(err, expected)
    assert (err > 0.1).all()


def test_encoder_homogeneity_error_rejects_a_bad_gain_shape() -> None:
    z = torch.ones(3, 8, 4)
    with pytest.raises(ShapeMismatchError, match="scalar gain"):
        metrics.encoder_homogeneity_error(z, z, torch.ones(2))


def test_encoder_additivity_error() -> None:
    g = torch.Generator().manual_seed(11)
    sources = torch.randn(4, 2, 16, generator=g, dtype=torch.float64)  # (sources, B, T)
    z_sum = sum(_linear_encoder(s) for s in sources)
    z_mix = _linear_encoder(sources.sum(0))
    assert metrics.encoder_additivity_error(z_mix, z_sum).abs().max() < 1e-12
    # The reference is Enc(mix): a sum of 3·Enc(mix) is off by 2·‖Enc(mix)‖.
    err = metrics.encoder_additivity_error(z_mix, 3 * z_mix)
    torch.testing.assert_close(err, torch.full((2,), 2.0, dtype=torch.float64))


def test_relative_error_value() -> None:
    y = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    torch.testing.assert_close(metrics.relative_error(2 * y, y), torch.ones(2, dtype=y.dtype))


# --- composite scores -----------------------------------------------------------------------


def test_composite_scores() -> None:
    y_hat, y = _signals((2, N_SAMPLES), seed=13)
    snr, mss = metrics.snr(y_hat, y), metrics.mss_distance(y_hat, y, SR)
    for fn in (metrics.decoder_homogeneity, metrics.decoder_additivity, metrics.reconstruction_scores):
        scores = fn(y_hat, y, SR)
        assert set(scores) == {"snr", "mss"}
        torch.testing.assert_close(scores["snr"], snr)
        torch.testing.assert_close(scores["mss"], mss)
    sep = metrics.separation_scores(y_hat, y, SR)
    assert set(sep) == {"si_sdr", "mss"}
    torch.testing.assert_close(sep["si_sdr"], metrics.si_sdr(y_hat, y))
    torch.testing.assert_close(sep["mss"], mss)
