"""One writer at a time (issue 22, item 1): the store id is the writer token, checked before every
write, so a store replaced under a running writer (``--overwrite``) is never mixed with it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lincae_core.errors import StoreReplacedError
from lincae_core.store import LatentStore
from lincae_core.store.synthetic import synthetic_store

LINCAE = shutil.which("lincae") or f"{sys.executable} -m lincae_cli"


def test_a_writer_stops_when_its_store_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ow.zarr"
    synthetic_store(path, [("a", 40), ("b", 40)], chunk_frames=16)
    writer = LatentStore.open(path, "r+")
    z = writer.read_track("a")
    replaced = LatentStore.create(
        path, model_id="other", model_config={}, geometry=writer.geometry, channels=1, overwrite=True
    )
    replaced.plan([("c", 70, 70 * 256, 16000, 1)])
    before = {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    for act in (
        lambda: writer.write_track(0, z),
        lambda: writer.write_tracks([0, 1], [z, z]),
        lambda: writer.mark_done(0),
        lambda: writer.mark_failed(1, "x"),
    ):
        with pytest.raises(StoreReplacedError, match="was replaced while this process wrote it"):
            act()
    after = {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    assert after == before  # nothing of the old writer reached the new store
    # writers of the same store (shards of one encode) are not stopped
    LatentStore.open(path, "r+").mark_done(0)
    replaced.mark_done(0)


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("old_kept", [True, False], ids=["old-renamed-aside", "old-deleted"])
def test_a_writer_paused_right_after_its_check_never_writes_into_the_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old_kept: bool
) -> None:
    """The window the token check alone leaves open: a writer whose check passed, then paused
    while ``--overwrite`` published another store at its path. The store is pinned to the
    directory it opened, so its writes land in the old directory (renamed aside) or fail (it is
    deleted), and the new store keeps every byte."""
    path, aside, other = tmp_path / "ow.zarr", tmp_path / "ow.zarr.old", tmp_path / "other.zarr"
    synthetic_store(path, [("a", 40), ("b", 40)], chunk_frames=16)
    synthetic_store(other, [("c", 70)], chunk_frames=16)
    writer = LatentStore.open(path, "r+")
    z = writer.read_track("a") + 1
    os.rename(path, aside)  # what publish_dir does for --overwrite: old aside, new in, old deleted
    os.rename(other, path)
    if not old_kept:
        shutil.rmtree(aside)
    before = _files(path)
    monkeypatch.setattr(writer, "check_writer", lambda: None)  # every check already passed
    acts = (
        lambda: writer.write_tracks([0, 1], [z, z]),
        lambda: writer.mark_done([0, 1]),
        lambda: writer.mark_failed(1, "x"),
    )
    for act in acts:
        if old_kept:
            act()
        else:
            with pytest.raises((OSError, KeyError)):  # zarr: no member in a deleted directory
                act()
    assert _files(path) == before  # nothing of the old writer reached the new store
    assert LatentStore.open(path).keys() == ["c"]
    if old_kept:
        old = LatentStore.open(aside)
        assert np.array_equal(old.read_track("a"), writer.cast_latents(0, z))
        assert [t.key for t in old.tracks()] == ["a", "b"]
        assert old.ledger()[0]["key"] == "b"


def _library(root: Path, n: int, seconds: float) -> Path:
    root.mkdir(parents=True)
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(n):
        sf.write(
            root / f"song{i:02d}.wav",
            (0.3 * np.sin(2 * np.pi * (200 + 30 * i) * t)).astype(np.float32),
            16000,
        )
    return root


@pytest.mark.slow
def test_overwrite_under_a_running_encode_never_mixes_the_stores(tmp_path: Path) -> None:
    """The race of the issue, made repeatable: encode A is stopped (SIGSTOP) after some tracks are
    done; encode B of another folder replaces the store with --overwrite; A resumes and must stop
    with one line, writing nothing into B's store, which stays equal to a clean encode of B."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    lib_a = _library(tmp_path / "a", 16, 3.0)
    lib_b = _library(tmp_path / "b", 3, 2.0)
    out = tmp_path / "ow.zarr"
    a = subprocess.Popen(
        [*LINCAE.split(), "encode", str(lib_a), str(out), "--workers", "1", "--chunk-frames", "16"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and a.poll() is None:
        try:
            st = LatentStore.open(out).table()["status"]
            if 2 <= int((st == 1).sum()) < len(st):
                break
        except Exception:  # not planned yet
            pass
        time.sleep(0.02)
    else:
        pytest.fail(f"encode A never stopped between 2 and all tracks done: {a.communicate()[1][-2000:]}")
    os.kill(a.pid, signal.SIGSTOP)
    try:
        b = subprocess.run(
            [*LINCAE.split(), "encode", str(lib_b), str(out), "--overwrite"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert b.returncode == 0, b.stderr
    finally:
        os.kill(a.pid, signal.SIGCONT)
    _, err = a.communicate(timeout=300)
    assert a.returncode == 1, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("Error")]
    assert len(lines) == 1, err
    assert "was replaced while this process wrote it" in lines[0]
    assert "Traceback" not in err
    clean = tmp_path / "clean.zarr"
    subprocess.run(
        [*LINCAE.split(), "encode", str(lib_b), str(clean)], env=env, check=True, capture_output=True
    )
    got, want = LatentStore.open(out), LatentStore.open(clean)
    keys = want.keys()
    assert got.keys() == keys == ["song00", "song01", "song02"]
    assert np.array_equal(got.table()["status"], want.table()["status"])
    for k in keys:
        assert np.array_equal(got.read_track(k), want.read_track(k)), k
