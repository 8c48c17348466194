"""The command-line contract through the installed console script: correct data, chaining,
partial results, machine failures, one convention across commands (issue: commands as typed)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lincae_core import LatentStore

LINCAE = shutil.which("lincae")
pytestmark = pytest.mark.skipif(LINCAE is None, reason="needs the installed console script")


def lincae(
    *args: str,
    cwd: Path,
    ckpt: str,
    code: int = 0,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LINCAE_CHECKPOINT": ckpt, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [LINCAE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,  # type: ignore[list-item]
        input=stdin,
        timeout=300,
    )
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r


def tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1, f0: float = 220.0) -> None:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * f0 * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([x * (1 - 0.3 * c) for c in range(channels)], 1).astype(np.float32), rate)


def test_stereo_source_in_mono_store_decodes_as_mono(tmp_path: Path, micro_ckpt: str) -> None:
    tone(tmp_path / "lib" / "s.wav", 3.0, channels=2)
    lincae("encode", "lib", "m.zarr", cwd=tmp_path, ckpt=micro_ckpt)
    lincae("decode", "m.zarr", "out", cwd=tmp_path, ckpt=micro_ckpt)
    info = sf.info(tmp_path / "out" / "s.wav")
    assert (info.channels, info.frames) == (1, 48000)
    wav = subprocess.run(
        [LINCAE, "decode", "m.zarr", "--key", "s", "-o", "-"],
        cwd=tmp_path,  # type: ignore[list-item]
        env={**os.environ, "LINCAE_CHECKPOINT": micro_ckpt},
        capture_output=True,
        check=True,
    ).stdout
    x, rate = sf.read(io.BytesIO(wav))
    assert (x.ndim, x.shape[0], rate) == (1, 48000, 16000)  # the header matches the data: 3 s
    tone(tmp_path / "lib2" / "m.wav", 2.0, channels=1)  # and the reverse: mono into a stereo store
    lincae("encode", "lib2", "st.zarr", "--channels", "stereo", cwd=tmp_path, ckpt=micro_ckpt)
    lincae("decode", "st.zarr", "out2", cwd=tmp_path, ckpt=micro_ckpt)
    assert sf.info(tmp_path / "out2" / "m.wav").channels == 2


def test_decode_to_source_rate_and_overwrite_guard(tmp_path: Path, micro_ckpt: str) -> None:
    tone(tmp_path / "lib" / "a.wav", 1.5, rate=8000)
    lincae("encode", "lib", "s.zarr", cwd=tmp_path, ckpt=micro_ckpt)
    out = lincae("decode", "s.zarr", "o", "--sample-rate", "source", cwd=tmp_path, ckpt=micro_ckpt)
    assert out.stdout.splitlines() == [str(Path("o") / "a.wav")]
    info = sf.info(tmp_path / "o" / "a.wav")
    assert (info.samplerate, info.frames) == (8000, 12000)  # the original rate and length
    err = lincae("decode", "s.zarr", "o", cwd=tmp_path, ckpt=micro_ckpt, code=1).stderr
    assert "already exists" in err
    assert len(err.strip().splitlines()) == 1
    lincae("decode", "s.zarr", "o", "--overwrite", "--sample-rate", "22050", cwd=tmp_path, ckpt=micro_ckpt)
    assert sf.info(tmp_path / "o" / "a.wav").samplerate == 22050


def test_overwrite_replaces_and_changed_audio_is_not_done_work(tmp_path: Path, micro_ckpt: str) -> None:
    tone(tmp_path / "one" / "x.wav", 2.0, f0=220.0)
    tone(tmp_path / "two" / "x.wav", 2.0, f0=880.0)  # same relative name, other audio
    lincae("encode", "one", "s.zarr", cwd=tmp_path, ckpt=micro_ckpt)
    first = LatentStore.open(tmp_path / "s.zarr")
    z1, id1 = first.read_track("x").copy(), first.store_id
    err = lincae("encode", "two", "s.zarr", cwd=tmp_path, ckpt=micro_ckpt).stderr
    assert "1 changed (x) (encoded now)" in err  # not "nothing to do": the changed audio is encoded
    updated = LatentStore.open(tmp_path / "s.zarr")
    assert not np.array_equal(updated.read_track("x"), z1)
    lincae("encode", "two", "s.zarr", "--overwrite", cwd=tmp_path, ckpt=micro_ckpt)
    second = LatentStore.open(tmp_path / "s.zarr")
    assert not np.array_equal(second.read_track("x"), z1)
    assert second.store_id != id1
    lincae("encode", "two", "t.zarr", cwd=tmp_path, ckpt=micro_ckpt)
    assert LatentStore.open(tmp_path / "t.zarr").store_id != second.store_id  # unique per store


def test_ops_on_an_unfinished_store_exit_3(tmp_path: Path, micro_ckpt: str) -> None:
    tone(tmp_path / "lib" / "a.wav", 1.0)
    lincae("encode", "lib", "p.zarr", "--plan-only", cwd=tmp_path, ckpt=micro_ckpt)
    r = lincae("gain", "p.zarr", "--gain", "0.5", cwd=tmp_path, ckpt=micro_ckpt, code=3)
    assert "left out 1 planned" in r.stderr
    assert LatentStore.open(tmp_path / r.stdout.strip()).n_tracks == 0


def test_closed_pipe_is_a_quiet_success(tmp_path: Path, micro_ckpt: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from _latent_stores import make_store

    make_store(tmp_path / "big.zarr", [(f"track-{i:05d}", 3) for i in range(20000)], seed=0)
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{LINCAE} ls big.zarr | head -1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "track-00000\t0.042\tdone\n"
    assert r.stderr == ""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a tmpfs (root)")
def test_disk_full_and_read_only_are_one_line_and_keep_work(tmp_path: Path, micro_ckpt: str) -> None:
    for i in range(6):
        tone(tmp_path / "lib" / f"t{i}.wav", 20.0, f0=100.0 + 50 * i)
    small, ro = tmp_path / "small", tmp_path / "ro"
    small.mkdir()
    ro.mkdir()
    try:
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(small)])
        if mount.returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        r = lincae(
            "encode",
            "lib",
            str(small / "s.zarr"),
            "--dtype",
            "float32",
            "--window",
            "2",
            cwd=tmp_path,
            ckpt=micro_ckpt,
            code=1,
        )
        lines = r.stderr.strip().splitlines()
        assert "No space left on device" in lines[-1]
        assert "resumes where it stopped" in lines[-1]
        assert "Traceback" not in r.stderr
        done = LatentStore.open(small / "s.zarr").table()["status"] == 1
        assert done.sum() < 6  # the rest stayed planned
        # free space and re-run, as the message says: the encode resumes and the result is the
        # same as an encode that never ran out of space
        subprocess.run(["mount", "-o", "remount,size=32m", str(small)], check=True)
        lincae(
            "encode",
            "lib",
            str(small / "s.zarr"),
            "--dtype",
            "float32",
            "--window",
            "2",
            cwd=tmp_path,
            ckpt=micro_ckpt,
        )
        lincae(
            "encode", "lib", "ref.zarr", "--dtype", "float32", "--window", "2", cwd=tmp_path, ckpt=micro_ckpt
        )
        store, ref = LatentStore.open(small / "s.zarr"), LatentStore.open(tmp_path / "ref.zarr")
        assert (store.table()["status"] == 1).all()
        for key in map(str, ref.table()["key"]):
            np.testing.assert_array_equal(store.read_track(key), ref.read_track(key))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], check=True)
        r = lincae(
            "gain",
            "ref.zarr",
            "--gain",
            "0.5",
            "-o",
            str(ro / "g.zarr"),
            cwd=tmp_path,
            ckpt=micro_ckpt,
            code=1,
        )
        assert len(r.stderr.strip().splitlines()) == 1
        assert "Read-only file system" in r.stderr
        assert "write the output elsewhere" in r.stderr
    finally:
        for m in (small, ro):
            subprocess.run(["umount", str(m)], capture_output=True)


def test_one_convention_across_commands(tmp_path: Path, micro_ckpt: str) -> None:
    tone(tmp_path / "lib" / "a.wav", 1.0)
    r = lincae("encode", "lib", "-o", "s.zarr", "-c", "default", "-v", cwd=tmp_path, ckpt=micro_ckpt)
    assert r.stdout == "s.zarr\n"
    assert "DEBUG" in r.stderr  # -v after the subcommand
    q = lincae("gain", "s.zarr", "--gain", "0.5", "-q", cwd=tmp_path, ckpt=micro_ckpt)
    assert q.stdout.strip().endswith("s.gain.zarr")
    mode = os.stat(tmp_path / "s.gain.zarr" / "zarr.json").st_mode & 0o777
    lincae("decode", "s.zarr", "d", cwd=tmp_path, ckpt="default")
    assert os.stat(tmp_path / "d" / "a.wav").st_mode & 0o777 == mode  # the umask, not 0600
    from lincae_cli.main import cli

    for cmd in ("encode", "decode", "eval", "demo"):
        device = next(p for p in cli.commands[cmd].params if p.name == "device")
        assert device.default == "auto"
        assert "--device" in lincae(cmd, "--help", cwd=tmp_path, ckpt=micro_ckpt).stdout
    rows = [
        json.loads(line)
        for line in lincae("ls", "s.zarr", "--json", cwd=tmp_path, ckpt=micro_ckpt).stdout.splitlines()
    ]
    assert rows[0]["status"] == "done"


def test_unreadable_inputs_are_named_with_their_reason(tmp_path: Path, micro_ckpt: str) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "notes.mp3").write_text("not audio at all\n")
    r = lincae("encode", "lib", "s.zarr", cwd=tmp_path, ckpt=micro_ckpt, code=3)
    assert r.stdout == "s.zarr\n"
    assert "no readable audio among the inputs; 1 inputs unreadable" in r.stderr
    assert "nothing to do" not in r.stderr
    failed = lincae("ls", "s.zarr", "--status", "failed", cwd=tmp_path, ckpt=micro_ckpt).stdout
    assert "notes.mp3: not a readable audio file" in failed
    assert "wrong extension or a corrupt file" in failed
    assert "possibly a pipe" not in failed
    info = json.loads(lincae("info", "s.zarr", "--json", cwd=tmp_path, ckpt=micro_ckpt).stdout)
    assert info["failures"][0]["key"] == "notes"
    assert info["failures"][0]["planning"] is True
