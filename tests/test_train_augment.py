"""Tests of the Lin-CAE augmentations and schedules against the numbers of method.md section 3."""

from __future__ import annotations

import pytest
import torch

from lincae_core.config import ModelConfig, TrainConfig, get_preset
from lincae_core.nn.consistency import delta_t
from lincae_core.nn.model import LinCAE
from lincae_core.nn.transforms import to_representation
from lincae_core.train import augment

K = 800_000


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("step", "lo", "hi"),
    [(300_000, 0.146, 2.707), (440_000, 0.5, 2.0), (580_000, 0.854, 1.293)],
)
def test_gain_range_matches_method_md(step: int, lo: float, hi: float) -> None:
    a_min, a_max = augment.gain_range(step, K)
    assert a_min == pytest.approx(lo, abs=5e-4)
    assert a_max == pytest.approx(hi, abs=5e-4)


@pytest.mark.parametrize("step", [720_000, 750_000, 800_000, 1_000_000])
def test_gain_range_is_exactly_one_after_0p9k(step: int) -> None:
    assert augment.gain_range(step, K) == (1.0, 1.0)


@pytest.mark.parametrize("step", [0, 100_000, 160_000])
def test_gain_range_starts_at_zero_three(step: int) -> None:
    assert augment.gain_range(step, K) == (0.0, 3.0)


def test_no_anneal_keeps_full_range() -> None:
    assert all(augment.gain_range(k, K, anneal=False) == (0.0, 3.0) for k in (0, 440_000, 800_000))


def test_anneal_factor_is_monotone_and_continuous() -> None:
    values = [augment.anneal_factor(k, K) for k in range(0, K + 1, 1000)]
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))
    assert max(abs(a - b) for a, b in zip(values, values[1:], strict=False)) < 0.01


@pytest.mark.parametrize(("end_exp", "end"), [(2.0, 0.01), (3.0, 0.001)])
def test_delta_t_endpoints(end_exp: float, end: float) -> None:
    assert delta_t(0, K, end_exp) == pytest.approx(0.1)
    assert delta_t(K, K, end_exp) == pytest.approx(end)
    assert delta_t(2 * K, K, end_exp) == pytest.approx(end)  # k is capped at K
    assert delta_t(K // 2, K, end_exp) < 0.1


def test_cap_keeps_peak_at_most_one() -> None:
    g = _gen()
    x = torch.randn(64, 1000, generator=g) * torch.rand(64, 1, generator=g) * 2.0
    a = augment.sample_gains(64, 0.0, 3.0, g, prob=1.0)
    capped = augment.cap_gains(a, x)
    assert (capped[:, None] * x).abs().amax(-1).max() <= 1.0 + 1e-6
    loud = (a * x.abs().amax(-1)) > 1.0
    assert loud.any()
    assert (~loud).any()
    assert torch.equal(capped[~loud], a[~loud])  # quiet enough: unchanged
    assert (capped[loud] < a[loud]).all()


def test_cap_shrinks_unit_gain_of_loud_mixture() -> None:
    x = torch.tensor([[0.0, 1.6, -0.4], [0.2, -0.5, 0.1]])
    capped = augment.cap_gains(torch.ones(2), x)
    assert capped[0] == pytest.approx(1 / 1.6, rel=1e-5)
    assert capped[1] == 1.0


def test_sample_gains_probability_and_zeroing() -> None:
    a = augment.sample_gains(20_000, 2.0, 3.0, _gen(), prob=0.8)
    assert ((a >= 2.0) & (a <= 3.0) | (a == 1.0)).all()
    assert (a == 1.0).float().mean().item() == pytest.approx(0.2, abs=0.015)
    small = augment.sample_gains(2000, 0.0, 0.04, _gen(), prob=1.0)
    assert torch.equal(small, torch.zeros(2000))  # |a| < 0.05 -> 0


def test_sample_gains_are_seeded() -> None:
    assert torch.equal(augment.sample_gains(8, 0, 3, _gen(3)), augment.sample_gains(8, 0, 3, _gen(3)))
    assert not torch.equal(augment.sample_gains(8, 0, 3, _gen(3)), augment.sample_gains(8, 0, 3, _gen(4)))


def test_mixtures_pair_each_item_with_its_circular_predecessor() -> None:
    x = torch.randn(4, 32, generator=_gen())
    w, w_prev = augment.mixture_weights(4, _gen(), "convex")
    assert ((w >= 0.5) & (w <= 1.0)).all()
    assert torch.allclose(w + w_prev, torch.ones(4))
    m = augment.mix_pairs(x, w, w_prev)
    assert torch.allclose(m[0], w[0] * x[0] + w_prev[0] * x[3])
    assert torch.allclose(m[2], w[2] * x[2] + w_prev[2] * x[1])


def test_sum_mode_is_the_plain_sum() -> None:
    x = torch.randn(3, 16, generator=_gen())
    w, w_prev = augment.mixture_weights(3, _gen(), "sum")
    assert torch.equal(augment.mix_pairs(x, w, w_prev), x + x.roll(1, 0))


def _cfg(**kw: object) -> TrainConfig:
    return TrainConfig(total_steps=K, batch_size=4, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["convex", "sum"])
def test_mixture_conditioning_latent_is_exactly_the_mix_of_source_latents(mode: str) -> None:
    mcfg: ModelConfig = get_preset("tiny").replace(
        base_channels=4, bottleneck_base_channels=32, cond_channels=16, latent_dim=8
    )
    torch.manual_seed(0)
    model = LinCAE(mcfg)
    x = 0.3 * torch.randn(4, 256 * 16 + 768, generator=_gen(1))
    batch = augment.augment_batch(x, _cfg(mix_weights=mode), step=0, generator=_gen(2))
    with torch.no_grad():
        z = model.encoder(to_representation(batch.x, mcfg))  # unscaled sources only
        cond = augment.conditioning_latents(z, batch)
        z_mix_true = model.encoder(to_representation(batch.x_aug[4:], mcfg))
    assert batch.w is not None
    assert batch.w_prev is not None
    for i in range(4):
        mix = batch.w[i] * z[i] + batch.w_prev[i] * z[i - 1]
        assert torch.equal(cond[4 + i], batch.a[4 + i] * mix)
        assert torch.equal(cond[i], batch.a[i] * z[i])
    assert not torch.allclose(cond[4:] / batch.a[4:, None, None], z_mix_true)  # not Enc(mixture)


def test_augment_batch_targets_and_encoder_input() -> None:
    x = 0.5 * torch.randn(4, 100, generator=_gen())
    batch = augment.augment_batch(x, _cfg(), step=0, generator=_gen(1))
    assert torch.equal(batch.x, x)  # the encoder sees the unscaled input
    assert batch.x_aug.shape == (8, 100)
    assert batch.a.shape == (8,)
    assert torch.equal(batch.target, batch.a[:, None] * batch.x_aug)
    assert batch.target.abs().amax() <= 1.0 + 1e-6


def test_switches_give_ablations_and_baseline() -> None:
    x = 0.5 * torch.randn(4, 100, generator=_gen())
    no_add = augment.augment_batch(x, _cfg(additivity=False), 0, _gen())
    assert no_add.x_aug.shape[0] == 4
    assert no_add.w is None
    no_hom = augment.augment_batch(x, _cfg(homogeneity=False), 0, _gen())
    assert no_hom.x_aug.shape[0] == 8
    assert torch.equal(no_hom.a, torch.ones(8))
    base_cfg = _cfg(additivity=False, homogeneity=False)
    assert base_cfg.use_mixit
    assert not _cfg().use_mixit
    base = augment.augment_batch(x, base_cfg, 0, _gen(5))
    assert torch.equal(base.a, torch.ones(8))
    assert base.x_aug.shape == (8, 100)  # + B encoded convex mixtures (the official baseline)
    assert not torch.equal(base.x, x)  # mixit changed some items (p = 0.5, seeded)


def test_mixit_averages_with_a_permuted_partner() -> None:
    x = torch.randn(6, 10, generator=_gen())
    assert torch.equal(augment.mixit(x, _gen(), prob=0.0), x)
    y = augment.mixit(x, _gen(), prob=1.0)
    for row in y:
        assert any(torch.allclose(row, 0.5 * (x[i] + x[j])) for i in range(6) for j in range(6))


def test_official_baseline_appends_encoded_mixtures() -> None:
    """The baseline (no additivity, no homogeneity) sees 2B items: B crops and B convex mixtures
    w·x_i + (1−w)·x_{i−1}, w ~ U[0.5, 1], that the encoder encodes itself at gain 1."""
    x = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    base = TrainConfig(preset="tiny", additivity=False, homogeneity=False, mixit_prob=0.0, total_steps=10)
    assert base.use_baseline_mixtures
    batch = augment.augment_batch(x, base, 0, torch.Generator().manual_seed(1))
    assert batch.x_aug.shape == (8, 100)
    assert batch.encode_aug
    assert batch.encoder_input.shape == (8, 100)
    assert batch.w is None  # no latent is mixed: the mixtures are encoded
    assert torch.equal(batch.a, torch.ones(8))
    mixes = batch.x_aug[4:]
    w = (mixes[1] - x[0]) / (x[1] - x[0])  # mix of x_1 with its predecessor x_0
    assert 0.5 <= float(w.median()) <= 1.0
    old = base.replace(baseline_mixtures=False)
    assert augment.augment_batch(x, old, 0, torch.Generator().manual_seed(1)).x_aug.shape == (4, 100)
    lincae = TrainConfig(preset="tiny", total_steps=10)
    assert not lincae.use_baseline_mixtures
    lin_batch = augment.augment_batch(x, lincae, 0, torch.Generator().manual_seed(1))
    assert lin_batch.encoder_input.shape == (4, 100)
