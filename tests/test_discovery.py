"""File discovery: recursion, extensions, hidden files, symlink loops, keys, --files-from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lincae_core.discovery import (
    AUDIO_EXTENSIONS,
    discover,
    parse_extensions,
    read_file_list,
    sources_fingerprint,
)


def _touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_recursive_sorted_case_insensitive_hidden_skipped(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "b.WAV",
        "a/c.flac",
        "a/d.Mp3",
        "e.aif",
        "notes.txt",
        ".hidden.wav",
        ".git/x.wav",
        "a/.cache/y.flac",
        "f.AIFF",
        "g.ogg",
    )
    srcs = discover(tmp_path)
    assert [s.rel for s in srcs] == ["a/c.flac", "a/d.Mp3", "b.WAV", "e.aif", "f.AIFF", "g.ogg"]
    assert [s.key for s in srcs] == ["a/c", "a/d", "b", "e", "f", "g"]
    assert all(s.path.is_absolute() == tmp_path.is_absolute() for s in srcs)


def test_extension_option(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav", "b.flac", "c.mp3")
    assert [s.key for s in discover(tmp_path, parse_extensions("FLAC, .mp3"))] == ["b", "c"]
    assert parse_extensions(None) == AUDIO_EXTENSIONS
    assert {"wav", "flac", "ogg", "mp3", "aiff", "aif"} <= set(AUDIO_EXTENSIONS)
    with pytest.raises(ValueError, match="at least one extension"):
        parse_extensions(" , ")


def test_key_collisions_are_deterministic(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav", "a.flac", "a.wav.flac", "s/x.ogg", "s/x.wav")
    keys = {s.rel: s.key for s in discover(tmp_path)}
    assert keys == {
        "a.flac": "a",
        "a.wav": "a.wav",
        "a.wav.flac": "a.wav.flac",
        "s/x.ogg": "s/x",
        "s/x.wav": "s/x.wav",
    }
    assert len(set(keys.values())) == len(keys)


def test_symlink_loops_are_safe(tmp_path: Path) -> None:
    _touch(tmp_path, "lib/a/x.wav")
    os.symlink(tmp_path / "lib", tmp_path / "lib/a/loop")  # a -> .. -> a -> ...
    os.symlink(tmp_path / "lib/a/x.wav", tmp_path / "lib/link.wav")
    os.symlink(tmp_path / "missing.wav", tmp_path / "lib/broken.wav")
    rels = [s.rel for s in discover(tmp_path / "lib")]
    assert "a/x.wav" in rels
    assert "link.wav" in rels
    assert "broken.wav" in rels
    assert len(rels) == len(set(rels)) <= 4


def test_directories_named_like_audio_are_sources(tmp_path: Path) -> None:
    _touch(tmp_path, "d.wav/inner.flac")
    found = [(s.rel, s.key) for s in discover(tmp_path)]
    assert found == [("d.wav", "d"), ("d.wav/inner.flac", "d.wav/inner")]


def test_files_from(tmp_path: Path) -> None:
    _touch(tmp_path, "lib/a.wav", "lib/sub/b.flac", "elsewhere/c.wav")
    lines = [
        "sub/b.flac\n",
        "# a comment\n",
        "\n",
        f"{tmp_path / 'lib/a.wav'}\n",
        "a.wav\n",
        "missing.wav\n",
        f"{tmp_path / 'elsewhere/c.wav'}\n",
        "notes.txt\n",
    ]
    srcs = discover(tmp_path / "lib", files=read_file_list(lines))
    by_rel = {s.rel: s for s in srcs}
    assert [s.key for s in srcs if not s.outside] == ["a", "missing", "notes", "sub/b"]  # duplicates dropped
    outside = [s for s in srcs if s.outside]
    assert len(outside) == 1
    assert outside[0].path == tmp_path / "elsewhere/c.wav"
    assert by_rel["notes.txt"].key == "notes"  # listed files are taken as given


def test_single_file_and_missing_root(tmp_path: Path) -> None:
    _touch(tmp_path, "one.wav")
    assert [(s.key, s.rel) for s in discover(tmp_path / "one.wav")] == [("one", "one.wav")]
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "nope")


def test_fingerprint_covers_names_sizes_and_mtimes(tmp_path: Path) -> None:
    """Same relative layout and file stats under another root (a shard on another node): the
    same fingerprint; other audio under the same names, or a changed file: another one."""
    _touch(tmp_path, "x/a.wav", "y/a.wav")
    for root in ("x", "y"):
        (tmp_path / root / "a.wav").write_bytes(b"RIFF0000")
        os.utime(tmp_path / root / "a.wav", ns=(1_700_000_000_000_000_000,) * 2)
    fx, fy = discover(tmp_path / "x"), discover(tmp_path / "y")
    assert sources_fingerprint(fx) == sources_fingerprint(fy)
    (tmp_path / "y" / "a.wav").write_bytes(b"RIFF00001")  # other content, same name
    assert sources_fingerprint(discover(tmp_path / "y")) != sources_fingerprint(fx)
    (tmp_path / "y" / "a.wav").write_bytes(b"RIFF0000")  # same size, new mtime
    assert sources_fingerprint(discover(tmp_path / "y")) != sources_fingerprint(fx)
    _touch(tmp_path, "x/b.wav")
    assert sources_fingerprint(discover(tmp_path / "x")) != sources_fingerprint(fx)
