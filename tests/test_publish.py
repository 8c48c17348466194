"""Build-then-rename of every output (lincae_core.publish): atomicity, replacement, permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lincae_core.publish import (
    atomic_path,
    publish_dir,
    remove_stale_siblings,
    temp_sibling,
    write_text_atomic,
)


def test_atomic_path_publishes_with_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "out.wav"
        with atomic_path(target, suffix=".wav") as tmp:
            assert tmp.parent == tmp_path
            assert tmp.name.endswith(".wav")
            assert tmp != target
            tmp.write_bytes(b"abc")
            assert not target.exists()  # nothing visible before the block completes
        assert target.read_bytes() == b"abc"
        assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)


def test_atomic_path_error_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    write_text_atomic(target, "old")

    def killed_mid_write() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]  # the temporary is gone


def test_publish_dir_refuses_or_replaces(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    first = temp_sibling(out, "tmp")
    first.mkdir()
    (first / "a").write_text("1")
    assert publish_dir(first, out, replace=False)
    second = temp_sibling(out, "tmp")
    second.mkdir()
    (second / "b").write_text("2")
    assert not publish_dir(second, out, replace=False)  # another writer was first: nothing replaced
    assert (out / "a").exists()
    assert second.exists()
    assert publish_dir(second, out, replace=True)
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # the old store is deleted


def test_remove_stale_siblings_only_removes_dead_writers(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    mine = temp_sibling(out, "plan")
    mine.mkdir()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dead = Path(str(temp_sibling(out, "plan")).replace(f"-{os.getpid()}-", f"-{dead_pid}-"))
    dead.mkdir()
    removed = remove_stale_siblings(out)
    assert removed == [dead]
    assert mine.exists()
    assert not dead.exists()
