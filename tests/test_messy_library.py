"""Issue 22, through the installed console script: a messy library's inputs are all accounted for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from _cli import lincae

from lincae_core.store import LatentStore


def test_unreadable_audio_formats_are_counted_warned_and_ledgered(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "a.wav", (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    (lib / "b.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    (lib / "c.aac").write_bytes(bytes(100))
    (lib / "notes.txt").write_text("not audio")
    plan = json.loads(lincae("encode", str(lib), str(tmp_path / "x.zarr"), "--dry-run", "--json").stdout)
    assert (plan["files"], plan["planned"], plan["failed"]) == (3, 1, 2)  # the .txt is not an input
    proc = lincae("encode", str(lib), str(tmp_path / "x.zarr"), code=3)  # partial: two inputs failed
    assert "b.m4a" in proc.stderr
    assert "c.aac" in proc.stderr
    failed = lincae("ls", str(tmp_path / "x.zarr"), "--status", "failed", "--json").stdout.splitlines()
    reasons = {json.loads(line)["key"]: json.loads(line).get("reason", "") for line in failed}
    assert set(reasons) == {"b", "c"}, failed
    assert "ffmpeg -i in.m4a out.flac" in reasons["b"]
    # an explicit extension list is taken as given
    only = json.loads(
        lincae("encode", str(lib), str(tmp_path / "y.zarr"), "--ext", "wav", "--dry-run", "--json").stdout
    )
    assert (only["files"], only["failed"]) == (1, 0)


def test_export_normalize_refuses_stats_older_than_the_done_tracks(tmp_path: Path) -> None:
    """stats taken while an encode had done 1 of 2 tracks, then the encode finished: export
    --normalize must not standardize every window with the first track's statistics."""
    from lincae_core.store import LatentStore

    path = tmp_path / "s.zarr"
    s = LatentStore.create(
        path,
        model_id="m",
        model_config={},
        geometry={"sample_rate": 16000, "samples_per_frame": 256, "latent_dim": 8},
        channels=1,
    )
    s.plan([("a", 40, 40 * 256, 16000, 1), ("b", 40, 40 * 256, 16000, 1)])
    rng = np.random.default_rng(0)
    s.write_track(0, rng.standard_normal((40, 1, 8)))
    s.mark_done(0)
    lincae("stats", str(path), code=3)  # b is still planned: left out, partial
    s.write_track(1, 5 + rng.standard_normal((40, 1, 8)))
    s.mark_done(1)
    err = (
        lincae(
            "export", str(path), str(tmp_path / "sh" / "%03d.tar"), "--window", "0.1", "--normalize", code=1
        )
        .stderr.strip()
        .splitlines()
    )
    assert len(err) == 1, err
    assert "measured on 1 done tracks, and 2 tracks are done now" in err[0]
    assert f"lincae stats {path}" in err[0]
    lincae("stats", str(path))
    lincae("export", str(path), str(tmp_path / "sh" / "%03d.tar"), "--window", "0.1", "--normalize")


def test_mix_and_extract_say_when_paired_tracks_do_not_line_up(tmp_path: Path) -> None:
    from _latent_stores import make_store

    make_store(tmp_path / "mix.zarr", [("song1", 80), ("song2", 60)], seed=1)
    make_store(tmp_path / "vocals.zarr", [("song1", 80), ("song2", 60)], seed=2)
    make_store(tmp_path / "short.zarr", [("song1", 80), ("song2", 47)], seed=3)
    clean = lincae("extract", str(tmp_path / "mix.zarr"), "--minus", str(tmp_path / "vocals.zarr"))
    assert "differ in length" not in clean.stderr
    assert "different times" not in clean.stderr
    cut = lincae("select", str(tmp_path / "vocals.zarr"), "--start", "0.1", "-o", str(tmp_path / "cut.zarr"))
    assert cut.stdout.strip() == str(tmp_path / "cut.zarr")
    shifted = lincae("extract", str(tmp_path / "mix.zarr"), "--minus", str(tmp_path / "cut.zarr"))
    assert "the inputs start at different times" in shifted.stderr
    assert f"{tmp_path / 'cut.zarr'}: 6 frames" in shifted.stderr  # 0.1 s rounded down to frames
    short = lincae("mix", str(tmp_path / "mix.zarr"), str(tmp_path / "short.zarr"))
    assert "1 paired tracks differ in length (e.g. 'song2': 60 vs 47 frames)" in short.stderr


def test_to_lufs_warns_outside_the_trained_gains_naming_the_tracks_and_caps(tmp_path: Path) -> None:
    from lincae_core.store import LatentStore

    path = tmp_path / "s.zarr"
    s = LatentStore.create(
        path,
        model_id="m",
        model_config={},
        channels=1,
        geometry={"sample_rate": 16000, "samples_per_frame": 256, "latent_dim": 8},
        model_card={"training": {"gain_range": [0.0, 3.0]}},
    )
    s.plan([("loud", 40, 40 * 256, 16000, 1), ("quiet/drums", 40, 40 * 256, 16000, 1)], loudness=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        s.write_track(i, rng.standard_normal((40, 1, 8)))
    s.write_loudness([0, 1], [-14.0, -40.0])
    s.mark_done([0, 1])
    plain = lincae("gain", str(path), "--to-lufs", "-14", "-o", str(tmp_path / "a.zarr")).stderr
    assert "gain(s) 19.9526 outside the training range: it was trained on gains in [0, 3]" in plain
    assert "The largest gain is 20x ('quiet/drums'), the smallest 1x ('loud')" in plain
    capped = lincae("gain", str(path), "--to-lufs", "-14", "--max-gain", "2", "-o", str(tmp_path / "b.zarr"))
    assert "--max-gain 2 held 1 tracks below -14 LUFS" in capped.stderr
    assert "outside the training range" not in capped.stderr
    z = LatentStore.open(tmp_path / "b.zarr").read_track("quiet/drums").astype(np.float32)
    ref = LatentStore.open(path).read_track("quiet/drums").astype(np.float32)
    assert np.abs(z - 2 * ref).max() < 1e-2
    assert "--to-lufs too" in lincae("gain", str(path), "--gain", "2", "--max-gain", "2", code=2).stderr


def test_decode_resumes_and_follows_the_exit_3_contract(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    t = np.arange(16000) / 16000
    for i in range(3):
        sf.write(lib / f"s{i}.wav", (0.2 * np.sin(2 * np.pi * (300 + 100 * i) * t)).astype(np.float32), 16000)
    sf.write(lib / "s3.wav", np.zeros(16000, np.float32), 16000)
    store = str(tmp_path / "x.zarr")
    lincae("encode", str(lib), store)
    from lincae_core.store import LatentStore

    LatentStore.open(store, "r+").mark_failed(3, "failed in this test")  # as an encode failure does
    full = lincae("decode", store, str(tmp_path / "full"), code=3)  # the failed track: left out, partial
    assert f"decode: left out 0 planned and 1 failed tracks of {store}" in full.stderr
    assert len(full.stdout.splitlines()) == 3
    # an interrupted decode: one file finished, the others not yet
    out = tmp_path / "out"
    lincae("decode", store, str(out), "--key", "s1")
    again = lincae("decode", store, str(out), code=1)
    assert "--resume" in again.stderr
    resumed = lincae("decode", store, str(out), "--resume", "--json", code=3)
    record = json.loads(resumed.stdout)
    assert record["resumed"] == [str(out / "s1.wav")]
    assert sorted(Path(f).name for f in record["files"]) == ["s0.wav", "s2.wav"]
    for name in ("s0.wav", "s1.wav", "s2.wav"):
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    # a file that this decode would not have written is not kept
    sf.write(out / "s0.wav", np.zeros(100, np.float32), 8000)
    wrong = lincae("decode", store, str(out), "--resume", code=1)
    assert "is not what this decode writes for 's0'" in wrong.stderr


def test_encode_takes_jobs_like_every_command(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "a.wav", np.zeros(8000, np.float32), 16000)
    for flag in ("-j", "--jobs", "--workers"):
        plan = json.loads(
            lincae("encode", str(lib), str(tmp_path / "x.zarr"), flag, "3", "--dry-run", "--json").stdout
        )
        assert plan["planned"] == 1
    assert "Invalid value" in lincae("encode", str(lib), str(tmp_path / "x.zarr"), "-j", "0", code=2).stderr


def test_key_template_and_match_pair_musdb_stems_by_song(tmp_path: Path) -> None:
    for song in ("a", "b"):
        for stem in ("vocals", "mixture"):
            (tmp_path / "musdb" / song).mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / "musdb" / song / f"{stem}.wav", np.zeros(4000, np.float32), 16000)
    lib = str(tmp_path / "musdb")
    plan = lincae(
        "encode",
        lib,
        str(tmp_path / "v.zarr"),
        "--match",
        "*/vocals.wav",
        "--key",
        "{parent}",
        "--dry-run",
        "--json",
    )
    assert json.loads(plan.stdout)["planned"] == 2
    clash = lincae("encode", lib, str(tmp_path / "x.zarr"), "--key", "{parent}", code=2).stderr
    assert "gives the key 'a' to both 'a/mixture.wav' and 'a/vocals.wav'" in clash
    bad = lincae("encode", lib, str(tmp_path / "x.zarr"), "--key", "{song}", code=2).stderr
    assert "expected fields among {rel}, {parent}, {name}, {ext}" in bad


def test_damaged_chunks_are_found_named_and_repaired_by_re_encoding(tmp_path: Path) -> None:
    """A partial copy: one chunk file deleted, another cut short. Every reader stops with one line
    naming the chunk and its tracks (no zeros, no reshape traceback); verify lists them; --repair
    plus the same encode restores the store bit for bit."""
    lib = tmp_path / "lib"
    lib.mkdir()
    t = np.arange(32000) / 16000
    for i in range(6):
        sf.write(lib / f"s{i}.wav", (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 16000)
    store = tmp_path / "x.zarr"
    lincae("encode", str(lib), str(store), "--chunk-frames", "16")
    ref = tmp_path / "ref.zarr"
    shutil.copytree(store, ref)
    chunks = sorted((store / "latents").glob("c.*"))
    assert len(chunks) >= 3
    chunks[1].unlink()
    chunks[2].write_bytes(chunks[2].read_bytes()[:100])
    for args in (
        ("decode", str(store), str(tmp_path / "out")),
        ("gain", str(store), "--gain", "0.5"),
        ("export", str(store), str(tmp_path / "sh" / "%03d.tar"), "--window", "0.5"),
    ):
        err = lincae(*args, code=1).stderr.strip().splitlines()
        assert len(err) == 1, (args, err)
        assert "latent chunk" in err[0]
        assert "done tracks" in err[0]
        assert "lincae verify" in err[0]
    report = json.loads(lincae("verify", str(store), "--json", code=3).stdout)
    problems = {d["chunk"]: d["problem"] for d in report["damaged"]}
    assert problems[1] == "missing"
    assert problems[2].startswith("truncated (100 of")
    fixed = json.loads(lincae("verify", str(store), "--repair", "--json", code=3).stdout)
    assert fixed["repaired_tracks"]
    lincae("encode", str(lib), str(store), "--chunk-frames", "16")
    lincae("verify", str(store))
    a, b = LatentStore.open(store), LatentStore.open(ref)
    keys = b.keys()
    for k in keys:
        assert np.array_equal(a.read_track(k), b.read_track(k)), k


def test_an_overflowing_op_names_its_output_and_the_option_that_fixes_it(tmp_path: Path) -> None:
    from _latent_stores import make_store

    make_store(tmp_path / "a.zarr", [("x", 40)], seed=1)
    out = tmp_path / "loud.zarr"
    err = lincae("gain", str(tmp_path / "a.zarr"), "--gain", "1e5", "-o", str(out), code=1).stderr.strip()
    assert err.count("\n") == 0, err
    assert err.startswith(f"Error: {out}: result overflows float16")
    assert "--dtype float32" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".loud.zarr.*"))  # no temporary left either
    lincae("gain", str(tmp_path / "a.zarr"), "--gain", "1e5", "-o", str(out), "--dtype", "float32")
    assert LatentStore.open(out).dtype == "float32"


def test_a_full_disk_names_the_output_and_keeps_nothing_half_written(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """ENOSPC while writing chunks: one line naming the output the user gave (not a temporary,
    not '(output)') and what to do; no output and no temporary left."""
    import errno

    from _latent_stores import make_store
    from click.testing import CliRunner

    import lincae_core.store.array as array_mod
    from lincae_cli.main import cli

    make_store(tmp_path / "a.zarr", [("x", 400)], seed=1)

    class Full:
        def __init__(self, *a: object, **k: object) -> None:
            pass

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *a: object) -> None:
            pass

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open

    def fake_open(path, mode="r", *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        return Full() if "w" in mode and ".partial" in str(path) else real_open(path, mode, *a, **k)

    monkeypatch.setattr(array_mod, "open", fake_open, raising=False)
    out = tmp_path / "g.zarr"
    r = CliRunner().invoke(cli, ["gain", str(tmp_path / "a.zarr"), "--gain", "0.5", "-o", str(out)])
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith(f"Error: {out}: No space left on device;"), line
    assert not out.exists()
    assert not list(tmp_path.glob(".g.zarr.*"))


def test_an_empty_output_is_said_and_exits_3(tmp_path: Path) -> None:
    from _latent_stores import make_store

    make_store(tmp_path / "a.zarr", [("x", 40), ("y", 60)], seed=1)
    r = lincae("select", str(tmp_path / "a.zarr"), "--start", "100", "-o", str(tmp_path / "s.zarr"), code=3)
    assert r.stdout.strip() == str(tmp_path / "s.zarr")  # still chains: the store exists
    assert "holds no latent frames" in r.stderr
