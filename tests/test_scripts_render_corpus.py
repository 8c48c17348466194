"""Tests for scripts/render_corpus.py (the procedural multi-stem corpus renderer).

The rendering tests need fluidsynth, the GM soundfont and espeak-ng
(scripts/install_corpus_deps.sh) and are skipped where they are missing; the
MIDI/WAV writer and planning tests run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "render_corpus.py"
STEMS = ("bass", "drums", "other", "vocals")
RATE, SECONDS = 16000, 3.0


def _load_module():
    spec = importlib.util.spec_from_file_location("render_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_corpus"] = module
    spec.loader.exec_module(module)
    return module


rc = _load_module()


def _renderer_available() -> bool:
    if shutil.which("fluidsynth") is None or shutil.which("espeak-ng") is None:
        return False
    try:
        rc.find_soundfont(None)
    except rc.MissingDependency:
        return False
    return True


SKIP_REASON = "fluidsynth/soundfont/espeak-ng missing (scripts/install_corpus_deps.sh)"
needs_renderer = pytest.mark.skipif(not _renderer_available(), reason=SKIP_REASON)


def _render(out_dir: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(SCRIPT),
        str(out_dir),
        "--tracks",
        "2",
        "--seconds",
        str(SECONDS),
        "--seed",
        "1234",
        "--sample-rate",
        str(RATE),
        "--jobs",
        "1",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, Path]:
    """The same corpus rendered twice: flat layout, then with --split-valid 1."""
    if not _renderer_available():
        pytest.skip(SKIP_REASON)
    root = tmp_path_factory.mktemp("corpus")
    first, second = root / "flat", root / "split"
    for out, extra in ((first, ()), (second, ("--split-valid", "1"))):
        result = _render(out, *extra)
        assert result.returncode == 0, result.stderr
        assert "2 rendered, 0 skipped" in result.stdout
    return first, second


@needs_renderer
def test_layout_and_manifest(rendered):
    flat, split = rendered
    expected = sorted(f"{name}.wav" for name in ("mixture", *STEMS))
    for track in ("track_0000", "track_0001"):
        assert sorted(p.name for p in (flat / track).iterdir()) == expected
    assert (split / "train" / "track_0000" / "mixture.wav").is_file()
    assert (split / "valid" / "track_0001" / "mixture.wav").is_file()
    assert not (split / "train" / "track_0001").exists()
    manifest = json.loads((flat / "corpus.json").read_text())
    assert manifest["seed"] == 1234
    assert manifest["complete"] is True
    assert manifest["version"] == rc.SCRIPT_VERSION
    assert [t["path"] for t in manifest["tracks"]] == ["track_0000", "track_0001"]
    for track in manifest["tracks"]:
        assert 80 <= track["bpm"] <= 140
        assert 32 <= track["bass_program"] <= 39
        assert track["key"]
        assert track["vocal_mode"] in ("espeak", "gm")
    split_manifest = json.loads((split / "corpus.json").read_text())
    assert [t["path"] for t in split_manifest["tracks"]] == ["train/track_0000", "valid/track_0001"]


@needs_renderer
def test_stems_sum_to_mixture_and_are_audible(rendered):
    flat, _ = rendered
    for track in ("track_0000", "track_0001"):
        audio = {}
        for name in ("mixture", *STEMS):
            info = sf.info(str(flat / track / f"{name}.wav"))
            assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "FLOAT")
            assert info.frames == int(SECONDS * RATE)
            audio[name] = sf.read(str(flat / track / f"{name}.wav"), dtype="float32")[0]
        total = audio["bass"] + audio["drums"] + audio["other"] + audio["vocals"]
        assert np.max(np.abs(total - audio["mixture"])) <= 1e-6
        assert np.max(np.abs(audio["mixture"])) <= rc.PEAK_LIMIT + 1e-6
        for name in STEMS:
            assert np.sqrt(np.mean(audio[name] ** 2)) > 1e-3, f"{track}/{name} is silent"


@needs_renderer
def test_same_seed_gives_identical_files(rendered):
    flat, split = rendered
    pairs = (("track_0000", "train/track_0000"), ("track_0001", "valid/track_0001"))
    for left, right in pairs:
        for name in ("mixture", *STEMS):
            assert (flat / left / f"{name}.wav").read_bytes() == (split / right / f"{name}.wav").read_bytes()


@needs_renderer
def test_rerun_skips_finished_tracks(rendered):
    flat, _ = rendered
    before = (flat / "track_0000" / "mixture.wav").stat().st_mtime_ns
    result = _render(flat)
    assert result.returncode == 0, result.stderr
    assert "0 rendered, 2 skipped" in result.stdout
    assert (flat / "track_0000" / "mixture.wav").stat().st_mtime_ns == before


def test_missing_fluidsynth_is_a_one_line_error(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing on PATH
    result = _render(tmp_path / "out", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "fluidsynth" in lines[0]
    assert "install_corpus_deps.sh" in lines[0]
    assert not (tmp_path / "out").exists()


def test_midi_file_structure():
    notes = [(0.0, 1.0, 0, 60, 100), (1.0, 0.5, 9, 36, 110)]
    data = rc.midi_file_bytes(notes, [(0, 33)], bpm=120)
    assert data[:4] == b"MThd"
    assert struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, rc.TPQ)
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    track = data[22:]
    assert len(track) == length
    assert track.endswith(b"\x00\xff\x2f\x00")
    assert b"\xff\x51\x03" + (500000).to_bytes(3, "big") in track  # 120 bpm
    assert bytes([0xC0, 33]) in track
    assert bytes([0x99, 36, 110]) in track


@pytest.mark.parametrize(
    ("value", "encoded"), [(0, b"\x00"), (480, b"\x83\x60"), (0x0FFFFFFF, b"\xff\xff\xff\x7f")]
)
def test_variable_length_quantity(value, encoded):
    assert rc._vlq(value) == encoded


def test_float_wav_writer_roundtrip(tmp_path):
    audio = np.random.default_rng(0).uniform(-1, 1, 1001).astype(np.float32)
    path = tmp_path / "x.wav"
    rc.write_wav_float(path, audio, 22050)
    back, rate = sf.read(str(path), dtype="float32")
    assert rate == 22050
    assert np.array_equal(back, audio)
    assert sf.info(str(path)).subtype == "FLOAT"
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_mix_stems_sums_exactly_and_limits_peak():
    rng = np.random.default_rng(1)
    stems = {name: rng.normal(0, 0.5, 4000) for name in STEMS}
    out = rc.mix_stems(stems, {name: 12.0 for name in STEMS})  # forces the peak limiter
    total = out["bass"] + out["drums"] + out["other"] + out["vocals"]
    assert np.array_equal(total, out["mixture"])
    assert np.max(np.abs(out["mixture"])) == pytest.approx(rc.PEAK_LIMIT, abs=1e-6)


def test_plans_are_seeded_and_independent_of_track_count():
    a = rc.plan_track(7, 3, None, 10.0)
    b = rc.plan_track(7, 3, "valid", 10.0)
    c = rc.plan_track(8, 3, None, 10.0)
    assert (a.bpm, a.key, a.bar_chords, a.gains_db) == (b.bpm, b.key, b.bar_chords, b.gains_db)
    assert b.relpath == "valid/track_0003"
    assert a.relpath == "track_0003"
    assert (a.bpm, a.key, a.bar_chords) != (c.bpm, c.key, c.bar_chords)
    assert a.bars == int(np.ceil(10.0 * a.bpm / 240.0)) + 1
