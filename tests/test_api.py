"""Windowed, bounded-memory encode/decode: window plans, cross-fades, seeding, exact lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lincae_core import api, transforms
from lincae_core.config import InferenceConfig, get_preset
from lincae_core.model import LinCAE

CFG = get_preset("tiny")
S = CFG.samples_per_frame


@pytest.mark.parametrize(("frames", "window", "overlap"), [(1, 8, 2), (8, 8, 2), (9, 8, 2), (50, 8, 3), (77, 10, 1)])
def test_plan_windows_cover_everything(frames: int, window: int, overlap: int) -> None:
    plan = api.plan_windows(frames, window, overlap)
    assert plan[0][0] == 0 and plan[-1][1] == frames
    for (s0, e0), (s1, e1) in zip(plan, plan[1:], strict=False):
        assert e1 - s1 == window and e0 - s0 == window
        assert e0 - s1 >= overlap  # consecutive windows overlap by at least `overlap`
    regions = api.crossfade_regions(plan, overlap)
    weights = np.zeros(frames)
    for i, (s, e) in enumerate(plan):
        weights[s:e] += api._ramp_weights(regions, i, s, e - s)
    assert np.allclose(weights, 1.0, atol=1e-6)  # the cross-fade is a partition of unity


class FrameFeatureModel(LinCAE):
    """A model whose 'latent' is a local function of the audio: stitching must be exact."""

    def encode_representation(self, rep: torch.Tensor) -> torch.Tensor:
        mag = rep.pow(2).sum(1).mean(1)  # (B, N) per STFT frame
        z = mag.reshape(mag.shape[0], -1, self.config.time_downsample).mean(-1)  # (B, Z)
        return z[:, None, :].expand(-1, self.config.latent_dim, -1).clone()


def test_windowed_encode_stitches_exactly() -> None:
    model = FrameFeatureModel(CFG)
    x = torch.randn(2, 3, 40 * S + 123, generator=torch.Generator().manual_seed(0))
    inf = InferenceConfig(window_s=8 / CFG.frame_rate, overlap_s=3 / CFG.frame_rate, batch_size=5)
    z = api.encode(model, x, inf)
    assert z.shape == (2, 3, 64, 41)
    ref = api.encode(model, x, InferenceConfig(window_s=100 / CFG.frame_rate, overlap_s=1))
    assert torch.allclose(z, ref, atol=1e-5)
    one = api.encode(model, x[1, 2], inf)  # batch composition does not matter
    assert torch.allclose(one, z[1, 2], atol=1e-6)


def test_single_window_encode_equals_model(micro_model: LinCAE) -> None:
    x = 0.3 * torch.randn(2, 7 * micro_model.config.samples_per_frame - 5)
    z = api.encode(micro_model, x, InferenceConfig(window_s=60, overlap_s=1))
    with torch.no_grad():
        assert torch.allclose(z, micro_model.encode(x), atol=1e-6)


class OracleDecoder(LinCAE):
    """Decodes a window to the true audio of its span (frame index carried in the latent)."""

    audio: torch.Tensor

    def decode_representation(self, z, steps=1, generator=None, generators=None):  # noqa: ANN001, ANN201
        segs = []
        for zi in z:
            start = round(float(zi[0, 0]))
            a, b = api.window_span(start, start + zi.shape[-1], self.config)
            seg = self.audio[a:b]
            segs.append(torch.nn.functional.pad(seg, (0, b - a - seg.shape[0])))
        return transforms.to_representation(torch.stack(segs), self.config)


def test_windowed_decode_reconstructs_across_seams() -> None:
    model = OracleDecoder(CFG)
    frames = 60
    n = (frames + 1) * S  # audio continues past the last frame: no cut inside a window
    model.audio = 0.3 * torch.randn(n, generator=torch.Generator().manual_seed(1))
    spec = torch.fft.rfft(model.audio)
    spec[int(0.9 * spec.shape[0]) :] = 0  # the front end drops Nyquist
    model.audio = torch.fft.irfft(spec, n=n)
    z = torch.zeros(1, 64, frames)
    z[0, 0] = torch.arange(frames, dtype=torch.float32)  # each frame knows its index
    inf = InferenceConfig(window_s=9 / CFG.frame_rate, overlap_s=2 / CFG.frame_rate, batch_size=3)
    blocks = list(api.iter_decode(model, z, frames * S - 77, inf))
    assert len(blocks) > 2  # streamed, not one block
    y = np.concatenate(blocks, -1)[0]
    assert y.shape == (frames * S - 77,)
    edge = CFG.n_fft - CFG.hop  # the track's own start is attenuated, like the reference
    assert np.allclose(y[edge:], model.audio.numpy()[edge : frames * S - 77], atol=1e-5)


def test_decode_seeded_and_batch_invariant(micro_model: LinCAE) -> None:
    z = torch.rand(2, 1, 64, 30, generator=torch.Generator().manual_seed(0)) - 0.5
    inf = InferenceConfig(window_s=8 / CFG.frame_rate, overlap_s=2 / CFG.frame_rate, batch_size=4)
    a = api.decode(micro_model, z, 30 * S - 1000, inf, seed=5)
    b = api.decode(micro_model, z[1, 0], 30 * S - 1000, inf, seed=5)
    c = api.decode(micro_model, z, 30 * S - 1000, inf, seed=6)
    assert a.shape == (2, 1, 30 * S - 1000)
    assert torch.equal(a[1, 0], b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_bad_shapes_are_clear_errors(micro_model: LinCAE) -> None:
    with pytest.raises(ValueError, match="Expected audio"):
        api.encode(micro_model, torch.zeros(1, 1, 1, 100))
    with pytest.raises(ValueError, match="Expected latents"):
        list(api.iter_decode(micro_model, torch.zeros(1, 3, 5)))
