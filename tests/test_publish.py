"""Build-then-rename of every output (lincae_core.publish): atomicity, replacement, permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lincae_core.errors import LincaeError, OutputExistsError
from lincae_core.publish import (
    atomic_path,
    building_dir,
    check_free,
    free_name,
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
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dead = Path(str(temp_sibling(out, "plan")).replace(f"-{os.getpid()}-", f"-{dead_pid}-"))
    dead.mkdir()
    removed = remove_stale_siblings(out)
    assert removed == [dead]
    assert mine.exists()
    assert not dead.exists()


def test_publish_dir_failed_rename_restores_the_old_output(tmp_path: Path) -> None:
    """The old output is renamed aside; if the new one then cannot take its place, it comes back."""
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "old").write_text("keep me")
    missing = temp_sibling(out, "tmp")  # never created: renaming it onto out fails for real (ENOENT)
    with pytest.raises(FileNotFoundError):
        publish_dir(missing, out, replace=True)
    assert (out / "old").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]  # no ".old" sibling left


def test_publish_dir_rename_error_restores_the_old_output(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "old").write_text("keep me")
    tmp = temp_sibling(out, "tmp")
    tmp.mkdir()
    real_rename = os.rename

    def rename(src, dst):  # the first rename (old output aside) works, publishing tmp fails
        if Path(src) == tmp:
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        publish_dir(tmp, out, replace=True)
    assert (out / "old").read_text() == "keep me"


def test_building_dir_publishes_on_success_and_cleans_on_error(tmp_path: Path) -> None:
    out = tmp_path / "a.zarr"
    with building_dir(out) as b:
        b.tmp.mkdir()
        (b.tmp / "x").write_text("1")
        assert not out.exists()
    assert b.published
    assert (out / "x").read_text() == "1"

    def fail() -> None:
        with building_dir(out, replace=True) as b2:
            b2.tmp.mkdir()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert (out / "x").read_text() == "1"  # the error replaced nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr"]


def test_building_dir_concurrent_publisher(tmp_path: Path) -> None:
    out = tmp_path / "a.zarr"
    with building_dir(out, exist_ok=True) as b:
        b.tmp.mkdir()
        out.mkdir()  # another process published first (a non-empty directory: rename(2)
        (out / "theirs").write_text("1")  # replaces an empty one)
    assert not b.published
    assert not b.tmp.exists()
    with pytest.raises(LincaeError, match="appeared while"), building_dir(out) as b:
        b.tmp.mkdir()


def test_free_name_and_check_free(tmp_path: Path) -> None:
    assert free_name(tmp_path, "a+b.mix", ".zarr") == tmp_path / "a+b.mix.zarr"
    (tmp_path / "a+b.mix.zarr").mkdir()
    (tmp_path / "a+b.mix-2.zarr").symlink_to(tmp_path / "nowhere")  # a dangling link is taken too
    assert free_name(tmp_path, "a+b.mix", ".zarr") == tmp_path / "a+b.mix-3.zarr"
    with pytest.raises(OutputExistsError, match=r"a\+b\.mix\.zarr already exists \(use --overwrite"):
        check_free(tmp_path / "a+b.mix.zarr", overwrite=False)
    assert check_free(tmp_path / "a+b.mix.zarr", overwrite=True) == tmp_path / "a+b.mix.zarr"
