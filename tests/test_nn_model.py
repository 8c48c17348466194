"""The U-Net (method.md section 2), scalings and sampler (section 4), and the reference oracle."""

from __future__ import annotations

import pytest
import torch
from conftest import micro_config, randomize

from lincae_core.config import ModelConfig, get_preset
from lincae_core.nn import transforms
from lincae_core.nn.consistency import sampler_sigmas, scalings
from lincae_core.nn.model import LinCAE
from lincae_core.release import reference_kwargs


def test_scalings_boundary_condition() -> None:
    c_skip, c_out, c_in = scalings(torch.tensor([0.002, 80.0]), 0.5, 0.002)
    assert c_skip[0].item() == pytest.approx(1.0)
    assert c_out[0].item() == pytest.approx(0.0)
    assert c_skip[1].item() == pytest.approx(3.906e-5, rel=1e-3)
    assert c_out[1].item() == pytest.approx(0.49998, abs=1e-5)
    assert c_in[1].item() == pytest.approx(0.0125, rel=1e-3)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(1, [80.0]), (2, [80.0, 2.515]), (3, [80.0, 9.723, 0.470]), (4, [80.0, 17.53, 2.515, 0.170])],
)
def test_sampler_sigmas_match_method(steps: int, expected: list[float]) -> None:
    sig = sampler_sigmas(steps, 0.002, 80.0, 7.0)
    assert len(sig) == steps + 1
    assert sig[-1] == pytest.approx(0.002)
    assert sig[:steps] == pytest.approx(expected, rel=2e-3)


def test_paper_preset_has_reference_size() -> None:
    model = LinCAE(get_preset("paper"))
    state = model.state_dict()
    assert len(state) == 583
    assert sum(p.numel() for p in model.parameters()) == 58_185_026
    assert sum(p.numel() for p in model.encoder.parameters()) == 16_261_568
    assert sum(p.numel() for p in model.decoder.parameters()) == 17_286_464


def test_latent_shape_and_tanh_bound(micro_model: LinCAE) -> None:
    x = torch.randn(3, 5000) * 0.3
    z = micro_model.encode(x)
    assert z.shape == (3, 64, -(-5000 // micro_model.config.samples_per_frame))
    assert z.abs().max() <= 1.0


def test_decode_is_seeded(micro_model: LinCAE) -> None:
    z = torch.rand(2, 64, 3) - 0.5
    a = micro_model.decode(z, 5000, steps=2, generator=torch.Generator().manual_seed(7))
    b = micro_model.decode(z, 5000, steps=2, generator=torch.Generator().manual_seed(7))
    c = micro_model.decode(z, 5000, steps=2, generator=torch.Generator().manual_seed(8))
    assert a.shape == (2, 5000)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _reference_unet(cfg: ModelConfig):  # noqa: ANN202
    generator = pytest.importorskip("linear_cae.components.generator")
    return generator.UNet(**reference_kwargs(cfg)[1])


def _oracle(cfg: ModelConfig, seconds: float) -> None:
    torch.manual_seed(0)
    ref = randomize(_reference_unet(cfg), 0.02).eval()
    ours = LinCAE(cfg).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = 0.3 * torch.randn(2, int(cfg.sample_rate * seconds))
    rep = transforms.to_representation(x, cfg)
    with torch.no_grad():
        z_ref, z = ref.encoder(rep), ours.encode_representation(rep)
        assert torch.allclose(z, z_ref, atol=1e-5)
        noise = torch.randn(2, 2, cfg.freq_bins, 8 * z.shape[-1])
        for sigma in (80.0, 2.515, 0.3):
            out_ref = ref.forward_generator(z_ref, noise * sigma, sigma)
            out = ours.denoise(noise * sigma, sigma, ours.decoder(z))
            assert torch.allclose(out, out_ref, atol=1e-5)


def test_oracle_reduced_config() -> None:
    cfg = ModelConfig(
        name="oracle",
        base_channels=16,
        bottleneck_base_channels=64,
        cond_channels=32,
        hop=128,
        layers=(1, 2, 1, 1, 2),
        num_bottleneck_layers=2,
    )
    _oracle(cfg, 0.4)


def test_oracle_micro_cpu_geometry() -> None:
    _oracle(micro_config().replace(attention=(0, 0, 1, 1, 1)), 0.5)


@pytest.mark.slow
def test_oracle_paper_config() -> None:
    _oracle(get_preset("paper"), 0.5)
