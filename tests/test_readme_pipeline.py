"""The README's pipelines, run literally through the installed console script in a temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _s3 import s3_env, s3_server  # noqa: F401

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_pipeline() -> str:
    """The bash block between the README's ``pipeline`` markers."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- pipeline:.*?-->\s*```bash\n(.*?)```\s*<!-- /pipeline -->", text, re.S)
    assert m, "README.md lost its pipeline block"
    return m.group(1)


def run_block(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a README block with bash, as a user would paste it (errors stop it)."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def make_library(root: Path) -> None:
    """vocals/ and accompaniment/ of two songs, at two rates and in two formats."""
    rng = np.random.default_rng(0)
    for song, rate, ext in (("song1", 44100, "wav"), ("song2", 22050, "flac")):
        t = np.arange(int(2.5 * rate)) / rate
        for stem, f0 in (("vocals", 440.0), ("accompaniment", 110.0)):
            x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
            (root / stem).mkdir(parents=True, exist_ok=True)
            sf.write(root / stem / f"{song}.{ext}", np.stack([x, 0.8 * x], 1).astype(np.float32), rate)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("lincae") is None, reason="needs the installed console script")
@pytest.mark.skipif(shutil.which("sox") is None, reason="the README pipes into sox (apt-get install sox)")
def test_readme_pipeline_runs_literally(tmp_path: Path, micro_ckpt: str) -> None:
    make_library(tmp_path / "library")
    script = readme_pipeline()
    assert "lincae encode ./library out.zarr" in script
    assert "lincae mix a.zarr b.zarr --gain 0.5" in script
    # The embedded default model is what users get; the micro checkpoint keeps the test fast. It
    # is passed the way users would set it for every command: through the environment.
    env = {**os.environ, "LINCAE_CHECKPOINT": micro_ckpt, "OMP_NUM_THREADS": "1"}
    result = run_block(script, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "out.zarr"  # encode prints its store
    assert "a+b.mix.zarr" in lines  # mix without -o prints the store it wrote
    assert lines[-1] != "out.zarr"
    assert sf.info(tmp_path / "song1.flac").samplerate == 16000  # decode -o - | sox
    assert sf.info(tmp_path / "song1.flac").channels == 1
    assert (tmp_path / "remix" / "song1.wav").is_file()  # decode "$(lincae mix ...)"
    assert (tmp_path / "vocals-song2" / "song2.wav").is_file()  # the xargs chain
    assert any(line.startswith("accompaniment/song1\t") for line in lines)  # ls | head -1


def readme_bucket_pipeline() -> str:
    """The bash block between the README's ``bucket-pipeline`` markers."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- bucket-pipeline:.*?-->\s*```bash\n(.*?)```\s*<!-- /bucket-pipeline -->", text, re.S)
    assert m, "README.md lost its bucket-pipeline block"
    return m.group(1)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("lincae") is None, reason="needs the installed console script")
def test_readme_bucket_pipeline_runs_literally(tmp_path: Path, micro_ckpt: str, s3_server, s3_env) -> None:  # noqa: ANN001, F811
    """The README's object-storage commands, as typed, against a real S3 API (moto on 127.0.0.1);
    only the bucket's name is the test's."""
    import s3fs

    make_library(tmp_path / "library")
    script = readme_bucket_pipeline().replace("s3://bucket/", f"s3://{s3_env}/")
    assert f"lincae encode ./library s3://{s3_env}/out.zarr" in script
    env = {**os.environ, **s3_server.env(), "LINCAE_CHECKPOINT": micro_ckpt, "OMP_NUM_THREADS": "1"}
    result = run_block(script, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"s3://{s3_env}/out.zarr"
    assert f"s3://{s3_env}/a+b.mix.zarr" in lines
    fs = s3fs.S3FileSystem()
    names = {k.split("/", 1)[1] for k in fs.find(s3_env)}
    assert {"audio/vocals/song1.wav", "shards/000000.tar", "quiet.zarr/zarr.json"} <= names
    assert not any(p.name.startswith("s3") for p in tmp_path.iterdir())  # nothing local named after a URL


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("lincae") is None, reason="needs the installed console script")
def test_readme_musdb_pipeline_runs_literally(tmp_path: Path, micro_ckpt: str) -> None:
    """The README's MUSDB pairing, as typed: stems keyed by song pair in extract."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- musdb-pipeline:.*?-->\s*```bash\n(.*?)```\s*<!-- /musdb-pipeline -->", text, re.S)
    assert m, "README.md lost its musdb-pipeline block"
    rng = np.random.default_rng(0)
    for song in ("song1", "song2"):
        for stem in ("vocals", "drums", "bass", "other", "mixture"):
            (tmp_path / "musdb" / song).mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / "musdb" / song / f"{stem}.wav", 0.1 * rng.standard_normal(16000), 16000)
    env = {**os.environ, "LINCAE_CHECKPOINT": micro_ckpt, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", m.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[:2] == ["vocals.zarr", "mixture.zarr"]
    assert lines[2:4] == ["song1", "song2"]
    assert lines[-1] == "accompaniment.zarr"
    assert "differ in length" not in result.stderr


@pytest.mark.skipif(shutil.which("lincae") is None, reason="needs the installed console script")
def test_readme_growing_pipeline_runs_literally(tmp_path: Path, micro_ckpt: str) -> None:
    """The README's growing library, as typed: the second encode adds the new file and keeps the
    finished tracks byte for byte."""
    from lincae_core.store import LatentStore

    text = README.read_text(encoding="utf-8")
    m = re.search(
        r"<!-- growing-pipeline:.*?-->\s*```bash\n(.*?)```\s*<!-- /growing-pipeline -->", text, re.S
    )
    assert m, "README.md lost its growing-pipeline block"
    make_library(tmp_path / "library")
    sf.write(tmp_path / "new-take.wav", 0.1 * np.random.default_rng(1).standard_normal(24000), 16000)
    first, second = m.group(1).split("cp new-take.wav")
    env = {**os.environ, "LINCAE_CHECKPOINT": micro_ckpt, "OMP_NUM_THREADS": "1"}
    assert run_block(first, tmp_path, env).returncode == 0
    first_store = LatentStore.open(tmp_path / "out.zarr")
    keys = first_store.keys()
    before = {k: first_store.read_track(k) for k in keys}
    result = run_block("cp new-take.wav" + second, tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["out.zarr"]
    assert "updated out.zarr: 1 new inputs (vocals/song3)" in result.stderr
    store = LatentStore.open(tmp_path / "out.zarr")
    assert store.keys() == [*before, "vocals/song3"]
    assert store.is_complete()
    for key, z in before.items():
        assert np.array_equal(store.read_track(key), z), key
