"""Latent store format v1 on real Zarr stores: round trips, layout, ledger, refusals."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import zarr
from _latent_stores import GEOMETRY, make_store

import lincae_core.store.layout as sl
from lincae_core.config.geometry import Geometry
from lincae_core.errors import (
    LincaeError,
    OutputExistsError,
    ShapeMismatchError,
    StoreFormatError,
    StoreMismatchError,
)
from lincae_core.store import LatentStore
from lincae_core.store.layout import plan_layout
from lincae_core.store.synthetic import synthetic_store

TRACKS = [("a/one", 30), ("b.two", 50), ("c", 7), ("d", 0), ("e", 21)]


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "s", TRACKS)
    assert s.is_complete()
    r = LatentStore.open(tmp_path / "s")
    assert r.keys() == [k for k, _ in TRACKS]
    for k, z in zs.items():
        np.testing.assert_array_equal(r.read_track(k), z)
    np.testing.assert_array_equal(r.read_track("b.two", 10, 20), zs["b.two"][10:20])
    t = r.track("a/one")
    assert (t.frames, t.samples, t.source_rate, t.channels, t.status) == (30, 30 * 256 - 100, 44100, 2, 1)
    assert r.track(1).key == "b.two"
    assert len(r.tracks(status=1)) == len(TRACKS)
    d = r.describe()
    assert d["tracks"] == 5
    assert d["status"] == {"planned": 0, "done": 5, "failed": 0}
    assert d["geometry"]["frame_rate"] == 62.5
    assert d["dtype"] == "float16"
    assert json.loads(json.dumps(d)) == d  # JSON-ready


def test_float32_store_is_exact(tmp_path: Path) -> None:
    _, zs = make_store(tmp_path / "s", TRACKS[:2], dtype="float32")
    r = LatentStore.open(tmp_path / "s")
    np.testing.assert_array_equal(r.read_track("a/one"), zs["a/one"])
    assert r.read_track("a/one").dtype == np.float32


def test_iter_blocks_cut_at_chunk_boundaries(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "s", TRACKS)
    t = s.track("b.two")
    blocks = list(s.iter_blocks("b.two", block_frames=16))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), zs["b.two"])
    for start, _ in blocks[1:]:
        assert (t.offset + start) % s.chunk_frames == 0


def test_plan_layout_shards_never_share_chunks() -> None:
    frames = np.array([5, 17, 3, 40, 1, 9, 12])
    lay = plan_layout(frames, chunk_frames=16, shards=3)
    assert lay.tracks_per_shard % lay.status_chunk == 0
    starts = lay.offsets[:: lay.tracks_per_shard]
    assert (starts % 16 == 0).all()
    ends = lay.offsets + frames
    for s in range(1, lay.shards):  # a shard's first chunk starts after the previous one's end
        assert starts[s] >= ends[s * lay.tracks_per_shard - 1]
    assert (np.diff(lay.offsets) >= 0).all()
    assert lay.total_frames == ends.max()


def _write_shard(path: str, shard: int) -> None:
    s = LatentStore.open(path, "r+")
    for i in s.shard_tracks(shard):
        t = s.track(i)
        s.write_track(i, np.full((t.frames, 1, 8), i + 1, dtype=np.float16))
        s.mark_done(i)
        if i % 3 == 0:
            s.mark_failed(i, f"failure in shard {shard}")


def test_concurrent_shards_write_disjoint_chunks(tmp_path: Path) -> None:
    s = LatentStore.create(
        tmp_path / "s", model_id="m", model_config={}, geometry=GEOMETRY, channels=1, chunk_frames=8
    )
    s.plan([(f"k{i}", 3 + i % 11, 0, 16000, 1) for i in range(40)], shards=4)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_shard, args=(str(tmp_path / "s"), k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    r = LatentStore.open(tmp_path / "s")
    assert r.is_complete()
    for i in range(40):
        assert (r.read_track(i) == i + 1).all()
    st = r.table()["status"]
    assert list(np.flatnonzero(st == 2)) == list(range(0, 40, 3))
    assert sorted(e["index"] for e in r.ledger()) == list(range(0, 40, 3))
    assert len(list((tmp_path / "s" / "ledger").glob("shard-*.jsonl"))) == 4
    chunk = json.loads((tmp_path / "s/tracks/status/zarr.json").read_text())
    assert r.layout["tracks_per_shard"] % chunk["chunk_grid"]["configuration"]["chunk_shape"][0] == 0


def test_replan_same_is_noop_other_is_refused(tmp_path: Path) -> None:
    s, _ = make_store(tmp_path / "s", TRACKS)
    rows = [(k, f, max(0, f * 256 - 100), 44100, 2) for k, f in TRACKS]
    s.plan(rows)
    assert s.table()["status"].tolist() == [1] * 5  # nothing reset
    with pytest.raises(StoreFormatError, match="already planned"):
        s.plan(rows[:2])


def test_write_refusals(tmp_path: Path) -> None:
    s = LatentStore.create(tmp_path / "s", model_id="m", model_config={}, geometry=GEOMETRY, channels=1)
    s.plan([("k", 4, 1000, 16000, 1)])
    with pytest.raises(ShapeMismatchError, match=r"expected latents of shape \(4, 1, 8\)"):
        s.write_track(0, np.zeros((5, 1, 8)))
    with pytest.raises(LincaeError, match="finite"):
        s.write_track(0, np.full((4, 1, 8), 1e6))  # overflows float16
    with pytest.raises(LincaeError, match="read-only"):
        LatentStore.open(tmp_path / "s").write_track(0, np.zeros((4, 1, 8)))
    with pytest.raises(OutputExistsError, match="already exists"):
        LatentStore.create(tmp_path / "s", model_id="m", model_config={}, geometry=GEOMETRY, channels=1)
    s2 = LatentStore.create(tmp_path / "t", model_id="m", model_config={}, geometry=GEOMETRY, channels=1)
    with pytest.raises(StoreFormatError, match="NUL"):
        s2.plan([("a\x00b", 1, 0, 1, 1)])
    with pytest.raises(StoreFormatError, match="unique"):
        s2.plan([("a", 1, 0, 1, 1), ("a", 2, 0, 1, 1)])


def test_ledger_records_retries_and_torn_lines(tmp_path: Path) -> None:
    s, _ = make_store(tmp_path / "s", TRACKS, failed=("c", "e"))
    s.record_failure("lib/broken.flac", "cannot decode: truncated file")
    assert not (s.table()["status"] == 0).any()
    with open(tmp_path / "s/ledger/shard-0000.jsonl", "a") as f:
        f.write('{"key": "x", "reas')  # a killed writer's last line
    s.write_track(2, np.zeros((7, 2, 8)))  # retry of "c" succeeds
    s.mark_done(2)
    led = LatentStore.open(tmp_path / "s").ledger()
    assert {(e["key"], e["index"]) for e in led} == {("e", 4), ("lib/broken.flac", None)}
    assert len(LatentStore.open(tmp_path / "s").describe()["failures"]) == 2


def test_open_refuses_non_stores(tmp_path: Path) -> None:
    with pytest.raises(StoreFormatError, match="does not exist"):
        LatentStore.open(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreFormatError, match="is not a lincae latent store"):
        LatentStore.open(tmp_path / "plain")
    zarr.open_group(str(tmp_path / "other"), mode="w").attrs["x"] = 1
    with pytest.raises(StoreFormatError, match="expected attribute format='lincae-latents'"):
        LatentStore.open(tmp_path / "other")


def _edit_attrs(path: Path, **changes: object) -> None:
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"].update(changes)
    (path / "zarr.json").write_text(json.dumps(meta))


def test_open_refuses_unknown_version(tmp_path: Path) -> None:
    make_store(tmp_path / "s", TRACKS[:1])
    _edit_attrs(tmp_path / "s", format_version=7)
    with pytest.raises(StoreFormatError, match="format_version 7.*supports format_version 1"):
        LatentStore.open(tmp_path / "s")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"geometry": {"sample_rate": -1, "samples_per_frame": 256, "latent_dim": 8}}, "sample_rate"),
        ({"geometry": {"sample_rate": 16000, "samples_per_frame": 256, "latent_dim": 2**40}}, "latent_dim"),
        ({"geometry": {**GEOMETRY, "frame_rate": 99.0}}, "frame_rate"),
        ({"dtype": "object"}, "dtype"),
        ({"channels": 3}, "channels"),
        ({"channels": True}, "channels"),
        ({"lineage": "rm -rf /"}, "lineage"),
        ({"model": {"id": 5, "config": {}}}, "model"),
        ({"store_id": None}, "store_id"),
        ({"layout": {"shards": -3, "tracks_per_shard": 1}}, "layout.shards"),
    ],
)
def test_open_refuses_malicious_attrs(tmp_path: Path, changes: dict, message: str) -> None:
    make_store(tmp_path / "s", TRACKS[:2])
    _edit_attrs(tmp_path / "s", **changes)
    with pytest.raises(StoreFormatError, match=message):
        LatentStore.open(tmp_path / "s")


def _edit_column(path: Path, name: str, values: np.ndarray, dtype: object = None) -> None:
    g = zarr.open_group(str(path), mode="r+")
    g.create_array(
        f"tracks/{name}",
        shape=values.shape,
        dtype=dtype or values.dtype,
        chunks=(max(1, values.size),),
        overwrite=True,
    )[:] = values


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("offset", np.array([0, 10**9]), "exceeds the latent array"),
        ("frames", np.array([-5, 50]), "expected values >= 0"),
        ("offset", np.array([0, 5]), "non-overlapping"),
        ("key", np.array([1, 2]), "expected strings"),
        ("key", np.array(["a", "a"], dtype=np.dtypes.StringDType()), "unique"),
        ("key", np.array(["a", ""], dtype=np.dtypes.StringDType()), "non-empty"),
        ("samples", np.array([10**9, 0]), "samples <= frames"),
        ("status", np.array([1, 9], dtype=np.int8), "out of range"),
        ("frames", np.array([30.0, 50.0]), "expected int64"),
        ("channels", np.array([1, 1, 1], dtype=np.int8), r"expected shape \(2,\)"),
    ],
)
def test_open_refuses_malicious_tables(tmp_path: Path, name: str, values: np.ndarray, message: str) -> None:
    make_store(tmp_path / "s", TRACKS[:2])
    _edit_column(tmp_path / "s", name, values)
    with pytest.raises(StoreFormatError, match=message):
        LatentStore.open(tmp_path / "s")


def test_open_refuses_absurd_latent_shapes(tmp_path: Path) -> None:
    make_store(tmp_path / "s", TRACKS[:1])
    g = zarr.open_group(str(tmp_path / "s"), mode="r+")
    g.create_array("latents", shape=(30, 2, 9), dtype="float16", chunks=(16, 2, 9), overwrite=True)
    with pytest.raises(StoreFormatError, match=r"latents: expected shape \(F, 2, 8\)"):
        LatentStore.open(tmp_path / "s")
    g.create_array("latents", shape=(30, 2, 8), dtype="int16", chunks=(16, 2, 8), overwrite=True)
    with pytest.raises(StoreFormatError, match="expected dtype float16"):
        LatentStore.open(tmp_path / "s")


def test_compatibility_rules(tmp_path: Path) -> None:
    a, _ = make_store(tmp_path / "a", TRACKS[:1])
    b, _ = make_store(tmp_path / "b", TRACKS[:1], model_id="model-b")
    c, _ = make_store(
        tmp_path / "c",
        TRACKS[:1],
        geometry={"sample_rate": 44100, "samples_per_frame": 4096, "latent_dim": 8},
    )
    d, _ = make_store(tmp_path / "d", TRACKS[:1], channels=1)
    a.compatible_with(a)
    with pytest.raises(StoreMismatchError, match="different models"):
        a.compatible_with(b)
    a.compatible_with(b, force=True)
    for other, field in ((c, "geometry"), (d, "channels")):
        with pytest.raises(StoreMismatchError, match=field):
            a.compatible_with(other, force=True)


def test_geometry_validation() -> None:
    g = Geometry.from_dict(GEOMETRY)
    assert g.frame_rate == 62.5
    assert Geometry.from_dict(g.to_dict()) == g
    with pytest.raises(StoreFormatError):
        Geometry.from_dict({**GEOMETRY, "samples_per_frame": 0})


def test_chunk_cache_reads_like_the_array_within_its_budget(tmp_path: Path) -> None:
    from lincae_core.store.array import CachedArray, LatentArray

    make_store(tmp_path / "s", [(f"t{i}", 7 + i % 5) for i in range(40)], seed=3, chunk_frames=16)
    array = LatentArray.open(tmp_path / "s")
    chunk_bytes = 16 * array.shape[1] * array.shape[2] * array.dtype.itemsize
    cached = CachedArray(array, budget_bytes=3 * chunk_bytes)
    rng = np.random.default_rng(0)
    for _ in range(300):  # scattered short reads, some across a chunk boundary
        a = int(rng.integers(0, array.shape[0] - 20))
        b = a + int(rng.integers(1, 20))
        np.testing.assert_array_equal(cached.read(a, b), array.read(a, b))
        assert cached._bytes <= 3 * chunk_bytes  # the budget holds
    assert cached.hits > 0
    np.testing.assert_array_equal(cached.read(0, 40), array.read(0, 40))  # long reads bypass it


def test_gather_reads_scattered_ranges_in_order(tmp_path: Path) -> None:
    """gather (the reads of a random pairing) gives the ranges one after another, as reads of
    each would: from cached chunks, across chunk boundaries, without a cache, into a buffer."""
    from lincae_core.store.array import CachedArray, LatentArray

    make_store(tmp_path / "s", [(f"t{i}", 7 + i % 5) for i in range(40)], seed=3, chunk_frames=16)
    array = LatentArray.open(tmp_path / "s")
    rng = np.random.default_rng(1)
    starts = rng.integers(0, array.shape[0] - 20, 60)
    stops = starts + rng.integers(0, 20, 60)  # empty ranges and ranges across chunks included
    assert ((starts // 16) != ((stops - 1) // 16)).any()
    want = np.concatenate([array.read(int(a), int(b)) for a, b in zip(starts, stops, strict=True)])
    buf = np.empty((want.shape[0] + 5, *want.shape[1:]), want.dtype)
    chunk_bytes = 16 * array.shape[1] * array.shape[2] * array.dtype.itemsize
    one = CachedArray(array, chunk_bytes)  # room for one chunk: served chunk by chunk
    for reader in (array, CachedArray(array, 4 * chunk_bytes), one, CachedArray(array, 0)):
        np.testing.assert_array_equal(reader.gather(starts, stops), want)
        got = reader.gather(starts, stops, buf)
        np.testing.assert_array_equal(got, want)
        assert np.shares_memory(got, buf)  # filled the buffer, no fresh array
    # chunk by chunk: each chunk fetched once a call (ranges across a boundary read two more)
    inside = (starts // 16) == ((stops - 1) // 16)
    per_call = len(set((starts[inside] // 16).tolist())) + 2 * int((~inside & (stops > starts)).sum())
    assert one._bytes <= chunk_bytes
    assert one.misses <= 2 * per_call


def _chunk_files(store: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted((store / "latents").rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize("sep", [".", "/"])
def test_direct_chunk_io_matches_zarr_byte_for_byte(tmp_path: Path, monkeypatch, sep: str) -> None:  # noqa: ANN001
    """The direct chunk-file path writes the very files zarr writes and reads what zarr reads,
    with the chunk keys lincae writes (c.K.0.0) and with those of older stores (c/K/0/0)."""
    from lincae_core.store import LatentArray, latent_store

    monkeypatch.setattr(latent_store, "CHUNK_KEY_SEPARATOR", sep)
    pieces = [(0, 5), (5, 20), (25, 33), (58, 1), (59, 7), (16, 32), (3, 4)]  # whole, partial, edge
    files = {}
    for name, zarr_io in (("direct", "0"), ("zarr", "1")):
        monkeypatch.setenv("LINCAE_ZARR_IO", zarr_io)
        s = LatentStore.create(
            tmp_path / name, model_id="m", model_config={}, geometry=GEOMETRY, channels=2, chunk_frames=16
        )
        s.plan([(f"k{i}", n, n * 256, 44100, 1) for i, n in enumerate([5, 20, 33, 1, 7])])
        a = LatentArray.open(tmp_path / name, "r+")
        assert (a._raw is None) == (zarr_io == "1")
        rng = np.random.default_rng(1)
        for off, n in pieces:
            a.write(off, rng.standard_normal((n, 2, GEOMETRY["latent_dim"])).astype(np.float16))
        files[name] = _chunk_files(tmp_path / name)
    assert files["direct"] == files["zarr"]
    assert len(files["direct"]) == 5  # 66 frames in chunks of 16
    assert all(name.startswith(f"latents/c{sep}") for name in files["direct"])
    assert {len(b) for b in files["direct"].values()} == {16 * 2 * GEOMETRY["latent_dim"] * 2}
    monkeypatch.setenv("LINCAE_ZARR_IO", "0")
    a = LatentArray.open(tmp_path / "zarr")
    z = zarr.open_group(str(tmp_path / "zarr"))["latents"]
    for lo, hi in ((0, 66), (3, 17), (15, 16), (60, 66), (64, 66), (10, 10), (40, 90)):
        np.testing.assert_array_equal(a.read(lo, hi), z[lo:hi])
    buf = np.full((40, 2, GEOMETRY["latent_dim"]), 7, np.float16)  # read into a reused buffer
    got = a.read(3, 30, buf)
    assert np.shares_memory(got, buf)
    np.testing.assert_array_equal(got, z[3:30])
    small = np.empty((5, 2, GEOMETRY["latent_dim"]), np.float16)  # too small: a fresh array
    assert not np.shares_memory(a.read(3, 30, small), small)
    (tmp_path / "zarr" / "latents" / f"c{sep}2{sep}0{sep}0").unlink()  # a chunk never written: zeros
    assert not a.read(32, 48).any()
    # an operation keeps the chunk layout of its input (frames a chunk and key separator)
    from lincae_core import ops

    LatentStore.open(tmp_path / "direct", "r+").mark_done(np.arange(5))
    ops.gain_store(tmp_path / "direct", tmp_path / "g", 2.0)
    g = LatentStore.open(tmp_path / "g")
    assert (g.chunk_key_separator, g.chunk_frames) == (sep, 16)
    assert LatentStore.open(tmp_path / "direct").chunk_key_separator == sep


def test_other_layouts_go_through_zarr(tmp_path: Path) -> None:
    """A latent array with a compressor (still a valid store) is read and written by zarr itself."""
    from lincae_core.store import LatentArray

    s, zs = make_store(tmp_path / "s", TRACKS)
    g = zarr.open_group(str(tmp_path / "s"), mode="r+")
    old = g["latents"][:]
    del g["latents"]
    g.create_array(
        "latents",
        shape=old.shape,
        chunks=(16, *old.shape[1:]),
        dtype=old.dtype,
        fill_value=0,
        compressors=zarr.codecs.ZstdCodec(),
    )
    g["latents"][:] = old
    r = LatentStore.open(tmp_path / "s")
    assert r.latents._raw is None
    for k, z in zs.items():
        np.testing.assert_array_equal(r.read_track(k), z)
    assert isinstance(LatentArray.open(tmp_path / "s").read(0, 3), np.ndarray)


def test_many_keys_out_of_order_are_validated_without_numpy_sort(tmp_path: Path) -> None:
    """numpy 2.4's sort of a StringDType array crashed the process (SIGSEGV) on ~20,000 keys out
    of order, and np.unique sorts: planning or opening such a store died. Uniqueness is checked in
    Python now."""
    keys = [f"a{i // 100}/t{i:06d}" for i in range(25_000)][::-1]
    sl.validate_keys(np.array(keys, dtype=np.dtypes.StringDType()), "lib.zarr")
    with pytest.raises(StoreFormatError, match="duplicate 'a1/t000100'"):
        sl.validate_keys(np.array([*keys, "a1/t000100"], dtype=np.dtypes.StringDType()), "lib.zarr")
    store = synthetic_store(tmp_path / "big.zarr", [(k, 1) for k in keys[:21_000]], chunk_frames=4096)
    assert LatentStore.open(store.path).keys()[:2] == keys[:2]
