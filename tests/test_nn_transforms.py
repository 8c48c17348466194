"""Front end (method.md section 1): round trips, lengths, and equality with the reference."""

from __future__ import annotations

import pytest
import torch
from conftest import music

from lincae_core.config import get_preset
from lincae_core.nn import transforms

PAPER = get_preset("paper")


def band_limited(x: torch.Tensor, keep: float = 0.9) -> torch.Tensor:
    """Zero the top of the spectrum: the front end drops the Nyquist bin, as the reference does."""
    spec = torch.fft.rfft(x)
    spec[..., int(keep * spec.shape[-1]) :] = 0
    return torch.fft.irfft(spec, n=x.shape[-1])


def test_white_noise_loses_only_the_nyquist_bin() -> None:
    x = 0.3 * torch.randn(1, PAPER.sample_rate, generator=torch.Generator().manual_seed(2))
    y = transforms.from_representation(transforms.to_representation(x, PAPER), PAPER)
    e = PAPER.n_fft - PAPER.hop
    err = y[:, e:-e] - x[:, e : y.shape[-1] - e]
    assert err.abs().max() > 1e-4  # white noise has energy at Nyquist, which is dropped
    assert (err.pow(2).mean() / x.pow(2).mean()).item() < 1e-3  # ... and that is all it loses


@pytest.mark.parametrize("preset", ["paper", "tiny"])
@pytest.mark.parametrize("kind", ["noise", "music"])
def test_round_trip_interior_exact(preset: str, kind: str) -> None:
    cfg = get_preset(preset)
    n = cfg.sample_rate  # 1 s
    if kind == "noise":
        x = band_limited(0.3 * torch.randn(2, n, generator=torch.Generator().manual_seed(1)))
    else:
        x = torch.from_numpy(music(cfg.sample_rate, 1.0))[None]
    rep = transforms.to_representation(x, cfg)
    assert rep.shape == (x.shape[0], 2, cfg.freq_bins, transforms.stft_frames(n, cfg))
    y = transforms.from_representation(rep, cfg)
    assert y.shape[-1] == cfg.hop * (rep.shape[-1] - 1) + cfg.n_fft
    edge = cfg.n_fft - cfg.hop  # only partly covered by windows at both ends
    interior = slice(edge, y.shape[-1] - edge)
    assert torch.allclose(y[:, interior], x[:, interior], atol=1e-5)
    assert not torch.allclose(y[:, :edge], x[:, :edge], atol=1e-3)  # the edge really is attenuated


def test_amplitude_compression_scales_by_a_to_alpha() -> None:
    x = torch.randn(1, 8192)
    r1 = transforms.to_representation(x, PAPER)
    r2 = transforms.to_representation(0.5 * x, PAPER)
    assert torch.allclose(r2, 0.5**PAPER.alpha * r1, atol=1e-6)  # T(a x) = a^0.65 T(x)


@pytest.mark.parametrize(
    ("samples", "z_raw", "z_crop", "decoded_crop"),
    [(88_200, 22, 21, 87_552), (441_000, 108, 107, None), (131_072, 32, 31, None)],
)
def test_lengths_match_method_table(samples: int, z_raw: int, z_crop: int, decoded_crop: int | None) -> None:
    assert transforms.latent_length(samples, PAPER) == z_raw
    cropped = ((samples - 1536) // 512 // 8) * 4096 + 1536  # Music2Latent API crop
    assert transforms.latent_length(cropped, PAPER) == z_crop
    if decoded_crop:
        assert transforms.decoded_length(z_crop, PAPER) == decoded_crop
    assert transforms.decoded_length(22, PAPER) == 91_648
    assert transforms.stft_frames(34_304, PAPER) == 64  # the training segment -> Z = 8
    assert transforms.latent_length(34_304, PAPER) == 8


def test_padded_length_gives_exact_frame_count() -> None:
    for n in (1, 4095, 4096, 4097, 88_200):
        z, length = transforms.padded_length(n, PAPER)
        assert z == -(-n // 4096)
        assert transforms.latent_length(length, PAPER) == z
        assert transforms.decoded_length(z, PAPER) == length


def test_equals_reference_front_end() -> None:
    frontends = pytest.importorskip("linear_cae.components.frontends")
    fe = frontends.ScaledComplexSTFT(hop_size=512, n_fft_factor=4, alpha_rescale=0.65, beta_rescale=0.34)
    x = 0.2 * torch.randn(2, 30_000)
    ours = transforms.to_representation(x, PAPER)
    ref = fe.to_representation(x)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(transforms.from_representation(ours, PAPER), fe.to_waveform(ref), atol=1e-5)


def test_fast_front_end_matches_the_exact_one() -> None:
    """beta*|s|^(alpha-1)*s equals polar(beta*|s|^alpha, angle s) to float32 rounding, silence included."""
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    x = torch.randn(3, 16000) * 0.1
    x[1] = 0.0  # digital silence: every bin is zero, and must stay zero (no NaN from 0^(alpha-1))
    exact, fast = transforms.to_representation(x, cfg), transforms.to_representation(x, cfg, fast=True)
    assert torch.isfinite(fast).all()
    assert not fast[1].any()
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fast, exact)  # really another computation (the API keeps the exact one)
