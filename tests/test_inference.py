"""Windowed, bounded-memory encode/decode of arrays: stitching, seeding, exact lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lincae_core import inference, windowing
from lincae_core.config import InferenceConfig, get_preset
from lincae_core.errors import InvalidAudioError, ShapeMismatchError
from lincae_core.inference import encode
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE

CFG = get_preset("tiny")
S = CFG.samples_per_frame


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
    z = inference.encode(model, x, inf)
    assert z.shape == (2, 3, 64, 41)
    ref = inference.encode(model, x, InferenceConfig(window_s=100 / CFG.frame_rate, overlap_s=1))
    assert torch.allclose(z, ref, atol=1e-5)
    one = inference.encode(model, x[1, 2], inf)  # batch composition does not matter
    assert torch.allclose(one, z[1, 2], atol=1e-6)


def test_single_window_encode_equals_model(micro_model: LinCAE) -> None:
    x = 0.3 * torch.randn(2, 7 * micro_model.config.samples_per_frame - 5)
    z = inference.encode(micro_model, x, InferenceConfig(window_s=60, overlap_s=1))
    with torch.no_grad():
        assert torch.allclose(z, micro_model.encode(x), atol=1e-6)


class OracleDecoder(LinCAE):
    """Decodes a window to the true audio of its span (frame index carried in the latent)."""

    audio: torch.Tensor

    def decode_representation(self, z, steps=1, generator=None, generators=None):  # noqa: ANN001, ANN201
        segs = []
        for zi in z:
            start = round(float(zi[0, 0]))
            a, b = windowing.window_span(start, start + zi.shape[-1], self.config)
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
    blocks = list(inference.iter_decode(model, z, frames * S - 77, inf))
    assert len(blocks) > 2  # streamed, not one block
    y = np.concatenate(blocks, -1)[0]
    assert y.shape == (frames * S - 77,)
    edge = CFG.n_fft - CFG.hop  # the track's own start is attenuated, like the reference
    assert np.allclose(y[edge:], model.audio.numpy()[edge : frames * S - 77], atol=1e-5)


def test_decode_seeded_and_batch_invariant(micro_model: LinCAE) -> None:
    z = torch.rand(2, 1, 64, 30, generator=torch.Generator().manual_seed(0)) - 0.5
    inf = InferenceConfig(window_s=8 / CFG.frame_rate, overlap_s=2 / CFG.frame_rate, batch_size=4)
    a = inference.decode(micro_model, z, 30 * S - 1000, inf, seed=5)
    b = inference.decode(micro_model, z[1, 0], 30 * S - 1000, inf, seed=5)
    c = inference.decode(micro_model, z, 30 * S - 1000, inf, seed=6)
    assert a.shape == (2, 1, 30 * S - 1000)
    assert torch.equal(a[1, 0], b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_bad_shapes_are_clear_errors(micro_model: LinCAE) -> None:
    with pytest.raises(ValueError, match="Expected audio"):
        inference.encode(micro_model, torch.zeros(1, 1, 1, 100))
    with pytest.raises(ValueError, match="Expected latents"):
        list(inference.iter_decode(micro_model, torch.zeros(1, 3, 5)))


@pytest.mark.parametrize(
    ("audio", "error", "match"),
    [
        (np.zeros((4096, 2), np.float32), ShapeMismatchError, r"soundfile's \[T, C\] layout: pass audio.T"),
        (np.zeros((1, 4096, 2), np.float32), ShapeMismatchError, r"audio.transpose\(0, 2, 1\)"),
        (np.zeros(4096, np.int16), InvalidAudioError, "Got dtype int16"),
        (np.zeros(0, np.float32), InvalidAudioError, "no audio"),
        (np.full(4096, np.nan, np.float32), InvalidAudioError, "4096 NaN or infinite samples"),
        (torch.tensor([0.0, float("inf")] * 2048), InvalidAudioError, "2048 NaN or infinite samples of 4096"),
    ],
)
def test_encode_refuses_audio_it_would_misread(micro_model, audio, error, match) -> None:  # noqa: ANN001
    with pytest.raises(error, match=match):
        encode(micro_model, audio)


def test_encode_accepts_channels_first_stereo(micro_model) -> None:  # noqa: ANN001
    z = encode(micro_model, np.zeros((1, 2, 4096), np.float32))  # [B, C, T]: time last
    assert z.shape[:2] == (1, 2)
