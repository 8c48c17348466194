"""Decode stores to audio: exact lengths, traversal-proof names, WAV on stdout, refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import music

from lincae_cli.main import cli
from lincae_core import inference
from lincae_core.config import InferenceConfig
from lincae_core.decoding import decode_store, safe_relpath
from lincae_core.errors import StoreMismatchError
from lincae_core.nn.model import LinCAE
from lincae_core.store import LatentStore

KEYS = ["song", "album/track 1", "../../escape", "/abs/path", "a/./b/../c", ".hidden", "x\\..\\y"]


def _store(
    path: Path, model: LinCAE, lengths: list[int], keys: list[str] | None = None, channels: int = 1
) -> LatentStore:
    cfg = model.config
    keys = keys or [f"t{i}" for i in range(len(lengths))]
    store = LatentStore.create(
        path,
        model_id=model.model_id,
        model_config=cfg.to_dict(),
        geometry=cfg.geometry(),
        channels=channels,
        chunk_frames=8,
    )
    zs = [
        inference.encode(model, np.stack([music(cfg.sample_rate, n / cfg.sample_rate, i)] * channels))
        for i, n in enumerate(lengths)
    ]
    store.plan([(k, z.shape[-1], n, 44100, channels) for k, z, n in zip(keys, zs, lengths, strict=True)])
    for i, z in enumerate(zs):
        store.write_track(i, z.permute(2, 0, 1).numpy())
        store.mark_done(i)
    return store


@pytest.fixture
def model(micro_model: LinCAE) -> LinCAE:
    micro_model.model_id = "micro-test-model"
    return micro_model


@pytest.mark.parametrize("key", KEYS)
def test_safe_relpath_never_escapes(key: str, tmp_path: Path) -> None:
    rel = safe_relpath(key, ".wav")
    assert not rel.is_absolute()
    assert ".." not in rel.parts
    assert (tmp_path / rel).resolve().is_relative_to(tmp_path.resolve())
    assert not any(p.startswith(".") for p in rel.parts)


def test_decode_exact_lengths_and_mirrored_paths(tmp_path: Path, model: LinCAE) -> None:
    lengths = [5000, 12345, 30000, 7000, 9000, 4000, 3000]
    _store(tmp_path / "s.zarr", model, lengths, KEYS)
    out = tmp_path / "out"
    summary = decode_store(
        tmp_path / "s.zarr", out, model, inference=InferenceConfig(window_s=1, overlap_s=0.3)
    )
    assert len(summary.files) == len(KEYS)
    for f, n in zip(summary.files, lengths, strict=True):
        assert Path(f).resolve().is_relative_to(out.resolve())
        assert sf.info(f).frames == n
        assert sf.info(f).samplerate == model.config.sample_rate
    assert (out / "album" / "track 1.wav").exists()
    assert not list(tmp_path.glob("escape*"))
    assert not Path("/abs/path.wav").exists()
    assert not list(out.rglob(".part-*"))  # no temporary leftovers


def test_decode_seeded_reproducible_and_flac_stereo(tmp_path: Path, model: LinCAE) -> None:
    _store(tmp_path / "s.zarr", model, [6000], channels=2)
    a = decode_store(tmp_path / "s.zarr", tmp_path / "a", model, fmt="flac", seed=3).files[0]
    b = decode_store(tmp_path / "s.zarr", tmp_path / "b", model, fmt="flac", seed=3).files[0]
    xa, xb = sf.read(a)[0], sf.read(b)[0]
    assert xa.shape == (6000, 2)
    assert np.array_equal(xa, xb)


def test_stdout_wav_stream_matches_file(tmp_path: Path, model: LinCAE, micro_ckpt: str) -> None:
    _store(tmp_path / "s.zarr", model, [9000])
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "decode",
            str(tmp_path / "s.zarr"),
            "--key",
            "t0",
            "-o",
            "-",
            "--checkpoint",
            micro_ckpt,
            "--force",
            "--subtype",
            "FLOAT",
        ],
    )
    assert res.exit_code == 0, res.output
    x, rate = sf.read(io.BytesIO(res.stdout_bytes))
    assert rate == model.config.sample_rate
    assert x.shape == (9000,)
    files = runner.invoke(
        cli,
        [
            "decode",
            str(tmp_path / "s.zarr"),
            str(tmp_path / "o"),
            "--checkpoint",
            micro_ckpt,
            "--force",
            "--subtype",
            "FLOAT",
        ],
    )
    assert files.exit_code == 0, files.output
    y, _ = sf.read(tmp_path / "o" / "t0.wav")
    assert np.allclose(x, y, atol=1e-6)


def test_decode_refuses_other_model(tmp_path: Path, model: LinCAE, micro_ckpt: str) -> None:
    _store(tmp_path / "s.zarr", model, [5000])
    with pytest.raises(StoreMismatchError, match="was encoded by model"):
        decode_store(tmp_path / "s.zarr", tmp_path / "o", LinCAE(model.config))
    res = CliRunner().invoke(
        cli, ["decode", str(tmp_path / "s.zarr"), str(tmp_path / "o"), "--checkpoint", micro_ckpt]
    )
    assert res.exit_code == 1
    assert "encoded by model" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "decode",
            str(tmp_path / "s.zarr"),
            str(tmp_path / "o"),
            "--key",
            "nope",
            "--checkpoint",
            micro_ckpt,
            "--force",
        ],
    )
    assert res.exit_code == 1
    assert "nope" in res.output


def test_decode_clipping_is_reported(tmp_path: Path, model: LinCAE) -> None:
    store = _store(tmp_path / "s.zarr", model, [5000])
    loud = LinCAE(model.config)
    loud.model_id = model.model_id
    with torch.no_grad():
        loud.conv_out.weight.normal_(0.0, 50.0)  # decodes to a very loud signal
    summary = decode_store(store.path, tmp_path / "o", loud)
    assert summary.clipped["t0"] > 0
    x, _ = sf.read(summary.files[0])
    assert np.abs(x).max() <= 1.0


def test_encode_then_decode_gives_exact_original_lengths(tmp_path: Path, micro_ckpt: str) -> None:
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    lengths = {"a": (44100, 30001), "sub/b": (22050, 7777), "c": (16000, 16000)}
    for key, (rate, n) in lengths.items():
        sf.write(lib / f"{key}.wav", music(rate, n / rate, 1), rate)
    runner = CliRunner()
    enc = runner.invoke(cli, ["encode", str(lib), str(tmp_path / "s.zarr"), "-c", micro_ckpt])
    assert enc.exit_code == 0, enc.output
    dec = runner.invoke(cli, ["decode", str(tmp_path / "s.zarr"), str(tmp_path / "out"), "-c", micro_ckpt])
    assert dec.exit_code == 0, dec.output
    for key, (rate, n) in lengths.items():
        info = sf.info(tmp_path / "out" / f"{key}.wav")
        n = sf.info(lib / f"{key}.wav").frames
        expected = (2 * n * 16000 + rate) // (2 * rate)  # exact length at the model rate
        assert info.samplerate == 16000
        assert info.frames == expected


def test_decode_defaults_to_the_cards_recommended_steps(tmp_path: Path, micro_ckpt: str) -> None:
    """No --steps: the checkpoint's recommended_steps (measured by lincae card), else 1."""
    import json
    import shutil

    from lincae_core import load_model

    rec = tmp_path / "rec"
    shutil.copytree(micro_ckpt, rec)
    card = json.loads((rec / "model_card.json").read_text())
    (rec / "model_card.json").write_text(json.dumps({**card, "recommended_steps": 3}))
    assert load_model(micro_ckpt).recommended_steps == 1
    assert load_model(rec).recommended_steps == 3
    sf.write(tmp_path / "a.wav", music(16000, 1.0, 2), 16000)
    runner = CliRunner()
    enc = runner.invoke(cli, ["encode", str(tmp_path), str(tmp_path / "s.zarr"), "-c", str(rec)])
    assert enc.exit_code == 0
    outs = {}
    for name, extra in (("auto", []), ("three", ["--steps", "3"]), ("one", ["--steps", "1"])):
        r = runner.invoke(
            cli, ["decode", str(tmp_path / "s.zarr"), str(tmp_path / name), "-c", str(rec), *extra]
        )
        assert r.exit_code == 0, r.output
        outs[name] = sf.read(tmp_path / name / "a.wav")[0]
    np.testing.assert_array_equal(outs["auto"], outs["three"])
    assert not np.array_equal(outs["auto"], outs["one"])
