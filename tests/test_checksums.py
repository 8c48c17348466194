"""Issue 22, item 2: optional per-chunk checksums (``encode --checksums``, Zarr v3's crc32c codec),
through the installed console script: one flipped bit in one chunk file on disk is found by
``lincae verify`` and stops every reader with the one damage line naming the chunk and its tracks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from _audio import write_library
from _cli import lincae

from lincae_core.store import LatentStore
from lincae_core.store.synthetic import synthetic_store


def flip_bit(chunk: Path, payload: int) -> None:
    """Flip one bit in the middle of a chunk file's payload, in place (its size is unchanged)."""
    data = bytearray(chunk.read_bytes())
    data[payload // 2] ^= 0x10
    chunk.write_bytes(bytes(data))


def tracks_of(store: Path, chunk: int) -> set[str]:
    """The done tracks holding frames of object ``chunk``, from the store's own table."""
    s = LatentStore.open(store)
    cf = s.chunk_frames
    return {t.key for t in s.tracks(1) if t.offset < (chunk + 1) * cf and t.offset + t.frames > chunk * cf}


def one_damage_line(proc: subprocess.CompletedProcess, chunk: int, tracks: set[str]) -> str:
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    line = err[0]
    assert "Traceback" not in proc.stderr
    assert f"latent chunk {chunk} is corrupt" in line
    assert "CRC32C" in line
    assert f"{len(tracks)} done tracks" in line
    assert any(repr(t) in line for t in tracks)
    assert "lincae verify" in line
    assert "--repair" in line
    return line


def test_a_flipped_bit_is_found_named_refused_and_repaired(tmp_path: Path) -> None:
    lib = write_library(tmp_path / "lib", 6)
    store = tmp_path / "x.zarr"
    lincae("encode", str(lib), str(store), "--chunk-frames", "16", "--checksums")
    info = json.loads(lincae("info", str(store), "--json").stdout)
    assert info["checksums"] == "crc32c"
    clean = json.loads(lincae("verify", str(store), "--json").stdout)
    assert clean["checksums"] == "crc32c"
    assert clean["checksums_checked"] == clean["chunks_checked"] >= 3
    assert (clean["checksum_mismatches"], clean["damaged"]) == (0, [])
    # an op's output keeps the checksums of its input, like its chunk layout
    gained = tmp_path / "g.zarr"
    lincae("gain", str(store), "--gain", "0.5", "-o", str(gained))
    g_info = json.loads(lincae("info", str(gained), "--json").stdout)
    assert (g_info["checksums"], g_info["chunk_frames"]) == ("crc32c", 16)
    assert json.loads(lincae("verify", str(gained), "--json").stdout)["checksums_checked"] >= 3
    # a resumed encode may not drop them
    refused = lincae("encode", str(lib), str(store), "--no-checksums", code=1).stderr
    assert "another checksums" in refused

    ref = tmp_path / "ref.zarr"
    shutil.copytree(store, ref)
    chunk = store / "latents" / "c.1.0.0"
    size = chunk.stat().st_size
    payload = 16 * 64 * 2  # 16 frames of 64 float16 values, then the 4-byte CRC32C
    assert size == payload + 4
    flip_bit(chunk, payload)
    assert chunk.stat().st_size == size  # a bit flip: the size check of verify alone would pass it
    assert chunk.read_bytes() != (ref / "latents" / "c.1.0.0").read_bytes()
    hit = tracks_of(store, 1)
    assert hit

    proc = lincae("verify", str(store), "--json", code=3)
    report = json.loads(proc.stdout)
    assert report["checksum_mismatches"] == 1
    assert report["checksums_checked"] == clean["checksums_checked"]
    assert [d["chunk"] for d in report["damaged"]] == [1]
    assert report["damaged"][0]["problem"].startswith("corrupt")
    assert set(report["damaged"][0]["tracks"]) == hit
    assert "chunk 1 corrupt" in proc.stderr
    n = clean["checksums_checked"]
    assert f"crc32c checksums: {n - 1} of {n} chunks match" in proc.stderr

    for args in (
        ("decode", str(store), str(tmp_path / "audio")),
        ("gain", str(store), "--gain", "0.5", "-o", str(tmp_path / "g2.zarr")),
        ("export", str(store), str(tmp_path / "sh" / "%03d.tar"), "--window", "0.5"),
    ):
        one_damage_line(lincae(*args, code=1), 1, hit)
    assert not (tmp_path / "g2.zarr").exists()

    # the repair the line names: mark the chunk's tracks planned, encode again, bit for bit
    fixed = json.loads(lincae("verify", str(store), "--repair", "--json", code=3).stdout)
    assert set(fixed["repaired_tracks"]) == hit
    lincae("encode", str(lib), str(store), "--chunk-frames", "16", "--checksums")
    assert json.loads(lincae("verify", str(store), "--json").stdout)["checksum_mismatches"] == 0
    a, b = LatentStore.open(store), LatentStore.open(ref)
    keys = b.keys()
    for k in keys:
        assert np.array_equal(a.read_track(k), b.read_track(k)), k


def test_a_store_without_checksums_says_so_and_cannot_see_a_flip(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    synthetic_store(path, [(f"t{i}", 40) for i in range(6)], chunk_frames=32)
    assert json.loads(lincae("info", str(path), "--json").stdout)["checksums"] is None
    flip_bit(path / "latents" / "c.2.0.0", 32 * 64 * 2)
    proc = lincae("verify", str(path), "--json")  # the size is right: nothing to see without checksums
    report = json.loads(proc.stdout)
    assert (report["checksums"], report["checksums_checked"], report["damaged"]) == (None, 0, [])
    assert "no checksums (encode with --checksums to add them)" in proc.stderr


def test_sharded_checksums_go_inside_the_shards_and_survive_an_op(tmp_path: Path) -> None:
    """With --chunks-per-object the crc32c codec is an inner codec of each shard (zarr's own I/O):
    the op output keeps both, and a flip inside a shard's chunk is found the same way."""
    path = tmp_path / "sh.zarr"
    tracks = [(f"t{i}", 50) for i in range(8)]
    synthetic_store(path, tracks, chunk_frames=64, chunks_per_object=4, checksums=True)
    meta = json.loads((path / "latents" / "zarr.json").read_text())
    sharding = meta["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert [c["name"] for c in sharding["configuration"]["codecs"]] == ["bytes", "crc32c"]
    keys = tmp_path / "keys.txt"
    keys.write_text("t1\nt2\nt3\nt4\n")
    out = tmp_path / "sel.zarr"
    lincae("select", str(path), "--keys-from", str(keys), "-o", str(out))
    info = json.loads(lincae("info", str(out), "--json").stdout)
    assert (info["checksums"], info["chunks_per_object"]) == ("crc32c", 4)
    flip_bit(path / "latents" / "c.2.0.0", 100)  # inside the shard's first chunk
    hit = tracks_of(path, 2)
    report = json.loads(lincae("verify", str(path), "--json", code=3).stdout)
    assert [(d["chunk"], set(d["tracks"])) for d in report["damaged"]] == [(2, hit)]
    one_damage_line(lincae("gain", str(path), "--db", "-6", "-o", str(tmp_path / "g.zarr"), code=1), 2, hit)
