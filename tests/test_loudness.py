"""Integrated loudness (BS.1770) measured while encoding, stored per track, shown by ls --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import music

from lincae_cli.main import cli
from lincae_core import LatentStore, gain_store
from lincae_core.audio import load_audio
from lincae_core.config import InferenceConfig
from lincae_core.discovery import discover
from lincae_core.encoding.job import EncodeSettings, encode_files
from lincae_core.loudness import integrated_loudness
from lincae_core.models import load_model

INFERENCE = InferenceConfig(window_s=1.0, overlap_s=0.3, batch_size=3)  # overlapping windows
FILES = {
    "a": ("a.wav", 44100, 1, 3.0, 0.5),
    "b": ("b.flac", 22050, 2, 2.2, 0.05),
    "short": ("short.wav", 16000, 1, 0.3, 0.5),
    "quiet": ("quiet.wav", 16000, 1, 1.0, 0.0),
}


def test_stream_meter_equals_pyloudnorm_whatever_the_pieces() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([music(16000, 2.7, seed=1), 0.3 * rng.standard_normal(int(2.7 * 16000))])
    ref = pyloudnorm.Meter(16000).integrated_loudness(x.T.astype(np.float64))
    for piece in (7, 999, 1600, 10**6):
        assert integrated_loudness(x, 16000, piece) == pytest.approx(ref, abs=1e-9)
    assert np.isnan(integrated_loudness(x[:, :6000], 16000))  # shorter than one 400 ms block
    assert np.isnan(integrated_loudness(np.zeros((1, 16000)), 16000))  # silence: unmeasured


@pytest.mark.parametrize("channels", ["mono", "stereo"])
def test_encode_stores_the_loudness_of_the_encoded_audio(
    tmp_path: Path, micro_ckpt: str, channels: str
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, (rel, rate, ch, sec, amp) in enumerate(FILES.values()):
        x = amp * music(rate, sec, seed=i) / 0.5
        sf.write(lib / rel, x if ch == 1 else np.stack([x, 0.5 * x], 1), rate)
    model = load_model(micro_ckpt)
    encode_files(discover(lib), tmp_path / "s.zarr", model, INFERENCE, EncodeSettings(channels=channels))
    store = LatentStore.open(tmp_path / "s.zarr")
    loud = dict(zip(store.keys(), store.loudness().tolist(), strict=True))
    for key in ("a", "b"):
        audio = load_audio(lib / FILES[key][0], 16000, channels).astype(np.float64)
        want = pyloudnorm.Meter(16000).integrated_loudness(audio.T)
        assert loud[key] == pytest.approx(want, abs=1e-4), key
    assert np.isnan(loud["short"])
    assert np.isnan(loud["quiet"])
    rows = {
        r["key"]: r
        for r in map(
            json.loads,
            CliRunner().invoke(cli, ["ls", str(tmp_path / "s.zarr"), "--json"]).stdout.splitlines(),
        )
    }
    assert rows["a"]["loudness_lufs"] == pytest.approx(loud["a"], abs=1e-4)
    assert rows["short"]["loudness_lufs"] is None
    gain_store(store, tmp_path / "n", to_lufs=-14.0, missing="skip")
    assert LatentStore.open(tmp_path / "n").keys() == ["a", "b"]
