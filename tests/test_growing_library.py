"""Issue 22, item 5, through the installed console script: a library that grows or changes is
encoded again in part (per-track fingerprints), never refused whole nor re-encoded whole."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _cli import lincae

from lincae_core.store import LatentStore


def tone(path: Path, seconds: float, f: float, seed: int = 0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    sf.write(path, (0.2 * np.sin(2 * np.pi * f * t) + noise).astype(np.float32), 16000)


def snapshot(path: Path) -> dict[str, np.ndarray]:
    store = LatentStore.open(path)
    keys = store.keys()
    return {k: store.read_track(k) for k in keys}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, (sec, f) in enumerate([(1.5, 220), (2.0, 330), (1.0, 440), (2.5, 550)]):
        tone(lib / f"t{i}.wav", sec, f, seed=i)
    return lib


def test_new_changed_and_gone_inputs(tmp_path: Path, library: Path, micro_ckpt: str) -> None:
    out = tmp_path / "out.zarr"
    lincae("encode", str(library), str(out), ckpt=micro_ckpt)
    before = snapshot(out)
    tone(library / "t4.wav", 1.2, 660, seed=9)  # new
    tone(library / "t1.wav", 3.0, 330, seed=7)  # rewritten: another length
    later = time.time() + 5
    os.utime(library / "t2.wav", (later, later))  # touched: same audio, another mtime
    (library / "t3.wav").unlink()  # deleted after encoding: its latents stay
    proc = lincae("encode", str(library), str(out), "--json", ckpt=micro_ckpt)
    d = json.loads(proc.stdout)
    u = d["update"]
    assert (u["added"], u["changed"], u["gone_kept"]) == (1, 2, 1), u
    assert (u["added_keys"], sorted(u["changed_keys"]), u["gone_keys"]) == (["t4"], ["t1", "t2"], ["t3"])
    assert d["encoded"] == 3  # t1, t2, t4 encoded; t0 and t3 carried over
    assert d["skipped"] == 2
    assert "updated" in proc.stderr
    assert "t4" in proc.stderr
    after = snapshot(out)
    assert list(after) == ["t0", "t1", "t2", "t3", "t4"]  # old order, new inputs at the end
    assert np.array_equal(after["t0"], before["t0"])
    assert np.array_equal(after["t3"], before["t3"])
    assert after["t1"].shape[0] > before["t1"].shape[0]  # re-planned at its new length
    assert np.allclose(after["t2"], before["t2"], atol=2e-3)  # same audio, encoded again
    store = LatentStore.open(out)
    assert store.is_complete()
    assert not np.isnan(store.loudness()).any()
    assert [e["op"] for e in store.lineage] == ["encode", "encode"]
    assert store.lineage[-1]["args"]["update"]["added_keys"] == ["t4"]
    # the store decodes like any other
    lincae("decode", str(out), str(tmp_path / "wav"), "--key", "t3", ckpt=micro_ckpt)
    assert (tmp_path / "wav" / "t3.wav").is_file()
    # and a third run finds nothing to do
    again = lincae("encode", str(library), str(out), "--json", ckpt=micro_ckpt)
    assert json.loads(again.stdout)["nothing_to_do"] is True


def test_another_library_is_refused_and_the_store_kept(
    tmp_path: Path, library: Path, micro_ckpt: str
) -> None:
    out = tmp_path / "out.zarr"
    lincae("encode", str(library), str(out), ckpt=micro_ckpt)
    before = snapshot(out)
    other = tmp_path / "other"
    other.mkdir()
    tone(other / "x.wav", 1.0, 100)
    proc = lincae("encode", str(other), str(out), ckpt=micro_ckpt, code=1)
    assert "none of its 4 tracks comes from these inputs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    after = snapshot(out)
    assert list(after) == list(before)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_sharded_update_is_planned_once_then_shards_run(
    tmp_path: Path, library: Path, micro_ckpt: str
) -> None:
    out = tmp_path / "out.zarr"
    for i in range(2):
        lincae("encode", str(library), str(out), "--shard", f"{i}/2", ckpt=micro_ckpt)
    tone(library / "t4.wav", 1.0, 700)
    proc = lincae("encode", str(library), str(out), "--shard", "0/2", ckpt=micro_ckpt, code=1)
    assert "--shard 0/2 --plan-only" in proc.stderr
    assert LatentStore.open(out).n_tracks == 4  # nothing changed
    lincae("encode", str(library), str(out), "--shard", "0/2", "--plan-only", ckpt=micro_ckpt)
    store = LatentStore.open(out)
    assert store.n_tracks == 5
    assert not store.is_complete()
    for i in range(2):
        lincae("encode", str(library), str(out), "--shard", f"{i}/2", ckpt=micro_ckpt)
    assert LatentStore.open(out).is_complete()


def test_dry_run_says_what_would_change(tmp_path: Path, library: Path, micro_ckpt: str) -> None:
    out = tmp_path / "out.zarr"
    lincae("encode", str(library), str(out), ckpt=micro_ckpt)
    tone(library / "t9.wav", 1.0, 900)
    d = json.loads(lincae("encode", str(library), str(out), "--dry-run", "--json", ckpt=micro_ckpt).stdout)
    assert d["update"]["added_keys"] == ["t9"]
    assert d["update"]["changed"] == 0
    assert LatentStore.open(out).n_tracks == 4  # a dry run writes nothing
