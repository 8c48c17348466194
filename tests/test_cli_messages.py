"""Issue 22, messages as a person meets them, through the installed ``lincae`` console script:
Ctrl-C exits 130 with a resume hint, spreadsheet files with a byte-order mark are read, a missing
or binary envelope file is one line naming it (no traceback), ``decode -o -`` honours --format
and refuses to write binary audio to a terminal."""

from __future__ import annotations

import io
import os
import pty
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lincae_core.store.synthetic import synthetic_store

LINCAE = shutil.which("lincae")
pytestmark = pytest.mark.skipif(LINCAE is None, reason="the lincae console script is not installed")


def _run(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([LINCAE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)  # type: ignore[list-item]
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r


def _wait_until_idle(pid: int, timeout: float = 120.0) -> None:
    """Wait until process ``pid`` stops using CPU for a second (blocked, e.g. on its stdin)."""

    def ticks() -> tuple[str, int]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[11]) + int(fields[12])  # state; utime + stime

    end, last, still = time.monotonic() + timeout, -1, 0
    while time.monotonic() < end:
        state, now = ticks()
        still = still + 1 if now == last and state == "S" else 0
        if still >= 4:  # 4 x 0.25 s without a tick
            return
        last = now
        time.sleep(0.25)
    raise AssertionError(f"process {pid} still busy after {timeout} s")


def test_ctrl_c_exits_130_with_a_resume_hint(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    # encode --files-from - waits for its list on stdin: interrupt it there, as a person would
    p = subprocess.Popen(
        [LINCAE, "encode", "lib", "out.zarr", "--files-from", "-"],  # type: ignore[list-item]
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # a shell running the tests in the background (nohup ... &) ignores SIGINT and its children
        # inherit that: give the command the default a person's terminal gives it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_until_idle(p.pid)  # past start-up (seconds on a loaded machine), blocked on stdin
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    assert "Aborted!" not in err


def test_byte_order_marks_are_read(tmp_path: Path) -> None:
    synthetic_store(tmp_path / "a.zarr", [("one", 40), ("two", 40)])
    (tmp_path / "keys.txt").write_bytes("\ufefftwo\n".encode())
    _run("select", "a.zarr", "-o", "s.zarr", "--keys-from", "keys.txt", cwd=tmp_path)
    listed = _run("ls", "s.zarr", cwd=tmp_path).stdout
    assert listed.split("\t")[0] == "two"
    (tmp_path / "env.csv").write_bytes("\ufeff0,1.0\n2,0.5\n".encode())  # an Excel "CSV UTF-8"
    _run("gain", "a.zarr", "-o", "g.zarr", "--envelope", "env.csv", cwd=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such envelope file"), (bytes(range(256)) * 10, "not a text file")],
)
def test_bad_envelope_file_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    synthetic_store(tmp_path / "a.zarr", [("one", 40)])
    if content is not None:
        (tmp_path / "env.csv").write_bytes(content)
    r = _run("gain", "a.zarr", "-o", "g.zarr", "--envelope", "env.csv", cwd=tmp_path, code=2)  # a value
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "env.csv" in r.stderr
    assert message in r.stderr
    assert not (tmp_path / "g.zarr").exists()


def _encoded(tmp_path: Path, micro_ckpt: str) -> dict[str, str]:
    env = {**os.environ, "LINCAE_CHECKPOINT": micro_ckpt, "OMP_NUM_THREADS": "1"}
    (tmp_path / "lib").mkdir()
    t = np.arange(16000 * 2) / 16000
    sf.write(tmp_path / "lib" / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    r = subprocess.run(
        [LINCAE, "encode", "lib", "s.zarr"], cwd=tmp_path, env=env, capture_output=True, timeout=300
    )  # type: ignore[list-item]
    assert r.returncode == 0, r.stderr
    return env


def test_decode_to_stdout_honours_format(tmp_path: Path, micro_ckpt: str) -> None:
    env = _encoded(tmp_path, micro_ckpt)
    for fmt, name in (("flac", "FLAC"), ("wav", "WAV")):
        r = subprocess.run(
            [LINCAE, "decode", "s.zarr", "--key", "a", "-o", "-", "--format", fmt],  # type: ignore[list-item]
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        info = sf.info(io.BytesIO(r.stdout))
        assert (info.format, info.frames, info.samplerate) == (name, 32000, 16000)


def test_decode_refuses_binary_output_at_a_terminal(tmp_path: Path, micro_ckpt: str) -> None:
    env = _encoded(tmp_path, micro_ckpt)
    main, tty = pty.openpty()
    try:
        r = subprocess.run(
            [LINCAE, "decode", "s.zarr", "--key", "a", "-o", "-"],  # type: ignore[list-item]
            cwd=tmp_path,
            env=env,
            stdout=tty,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(tty)
        os.close(main)
    assert r.returncode == 2, r.stderr
    assert "stdout, which is a terminal" in r.stderr


def test_quiet_is_quiet_on_success(tmp_path: Path, micro_ckpt: str) -> None:
    env = _encoded(tmp_path, micro_ckpt)
    for args in (
        ["encode", "lib", "s.zarr", "-q"],
        ["-q", "gain", "s.zarr", "--gain", "0.5", "-o", "g.zarr"],
        ["decode", "s.zarr", "out", "-q"],
    ):
        r = subprocess.run(
            [LINCAE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )  # type: ignore[list-item]
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", (args, r.stderr)
        assert r.stdout.strip(), args  # the result still prints


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mix", "a.zarr", "a.zarr", "-o", "m.zarr", "--count", "3"), "only with pair='random'"),
        (("mix", "a.zarr", "a.zarr", "-o", "m.zarr", "--gain", "1", "--gain", "2", "--gain", "3"), "gains"),
        (("export", "a.zarr", "shards", "--window", "0"), "window"),
        (("gain", "a.zarr", "-o", "g.zarr", "--envelope", "missing.csv"), "missing.csv"),
    ],
)
def test_value_errors_exit_2_like_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """A value the command line gave that the library refuses exits 2, as click's own usage errors
    (a bad option, a missing argument) do: scripts tell "fix the command" from "the run failed"."""
    synthetic_store(tmp_path / "a.zarr", [("one", 40), ("two", 40)])
    r = _run(*args, cwd=tmp_path, code=2)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert _run("gain", "a.zarr", "-o", "g2.zarr", "--gain", "x", cwd=tmp_path, code=2).stderr  # click's own
