"""Shared fixtures: a very small model config, a random-weight checkpoint, synthetic audio."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from lincae_core.checkpoint import save_checkpoint
from lincae_core.config import ModelConfig, get_preset
from lincae_core.nn.model import LinCAE


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run on one thread: two OpenMP threads slow tiny models 10-100x when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def micro_config() -> ModelConfig:
    """A few-thousand-parameter model with the CPU geometry (16 kHz, hop 256): fast in tests."""
    return get_preset("tiny").replace(
        name="micro",
        base_channels=4,
        bottleneck_base_channels=32,
        cond_channels=16,
        num_bottleneck_layers=1,
    )


def randomize(model: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter (zero-initialised layers too) so outputs are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


@pytest.fixture(scope="session")
def micro_cfg() -> ModelConfig:
    return micro_config()


@pytest.fixture(scope="session")
def micro_model(micro_cfg: ModelConfig) -> LinCAE:
    torch.manual_seed(0)
    return randomize(LinCAE(micro_cfg)).eval()


@pytest.fixture(scope="session")
def micro_ckpt(tmp_path_factory: pytest.TempPathFactory, micro_model: LinCAE) -> str:
    out = tmp_path_factory.mktemp("ckpt") / "micro"
    save_checkpoint(micro_model, out, card={"note": "random weights for tests"})
    return str(out)


def music(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A short seeded 'musical' signal: a few harmonic notes with envelopes plus light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    x = np.zeros_like(t)
    for _ in range(4):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        onset = rng.uniform(0, seconds / 2)
        env = np.clip(t - onset, 0, None) * np.exp(-3 * np.clip(t - onset, 0, None))
        for h in range(1, 5):
            x += env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.28)) / h
    noise = np.fft.rfft(rng.standard_normal(t.shape))
    noise[int(0.8 * noise.shape[0]) :] = 0  # band-limited: no energy at Nyquist
    x += 0.01 * np.fft.irfft(noise, n=t.shape[0])
    return (0.5 * x / np.abs(x).max()).astype(np.float32)
