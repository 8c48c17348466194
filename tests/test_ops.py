"""Latent algebra: pure functions, and streaming operations on real stores on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _latent_stores import make_store

from lincae_core import ops
from lincae_core.errors import ConfigError, LincaeError, ShapeMismatchError, StoreMismatchError
from lincae_core.ops import OpOptions, kernel
from lincae_core.ops import engine as ops_engine
from lincae_core.ops.blocks import Got, Request, Segments
from lincae_core.store import LatentArray, LatentStore

F16 = {"rtol": 2e-3, "atol": 4e-3}  # one float16 rounding of values of order 1
A_TRACKS = [("x", 30), ("y", 50), ("z", 7)]
B_TRACKS = [("z", 10), ("x", 30), ("y", 60)]  # same keys, other order and lengths


@pytest.fixture
def ab(tmp_path: Path) -> tuple[LatentStore, dict, LatentStore, dict]:
    a, za = make_store(tmp_path / "A", A_TRACKS, seed=1)
    b, zb = make_store(tmp_path / "B", B_TRACKS, seed=2)
    return a, za, b, zb


def f32(z: np.ndarray) -> np.ndarray:
    return z.astype(np.float32)


# ------------------------------------------------------------------------------ pure algebra
def test_pure_gain_composes_and_db() -> None:
    z = np.random.default_rng(0).standard_normal((20, 2, 8)).astype(np.float16)
    np.testing.assert_allclose(ops.gain(ops.gain(z, 0.5), -3.0), ops.gain(z, -1.5), rtol=1e-6)
    assert ops.gain(z, 2.0).dtype == np.float32
    assert ops.db_to_amplitude(20.0) == pytest.approx(10.0)
    assert ops.db_to_amplitude(-6.0) == pytest.approx(0.501187, rel=1e-5)


def test_pure_mix_extract_and_length() -> None:
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((12, 1, 8)).astype(np.float16) for _ in range(2))
    np.testing.assert_allclose(ops.mix([a, b], [0.3, 2.0]), ops.mix([b, a], [2.0, 0.3]), rtol=1e-6)
    np.testing.assert_allclose(ops.extract(ops.mix([a, b], [1, 1]), [b]), f32(a), atol=1e-6)
    with pytest.raises(ShapeMismatchError):
        ops.mix([a, b[:5]], [1, 1])
    with pytest.raises(ShapeMismatchError):
        ops.mix([a, b], [1])
    assert ops.match_length(a, 5).shape[0] == 5
    padded = ops.match_length(a, 15)
    assert padded.shape[0] == 15
    assert not padded[12:].any()


# --------------------------------------------------------------------------- store algebra
def test_gain_store_composes(ab: tuple, tmp_path: Path) -> None:
    a, za, _, _ = ab
    ops.gain_store(a, tmp_path / "g1", 0.5)
    ops.gain_store(tmp_path / "g1", tmp_path / "g2", -4.0)
    ops.gain_store(a, tmp_path / "g3", -2.0, options=OpOptions(max_block_frames=16))
    g2, g3 = LatentStore.open(tmp_path / "g2"), LatentStore.open(tmp_path / "g3")
    for k, z in za.items():
        np.testing.assert_allclose(f32(g2.read_track(k)), -2 * f32(z), **F16)
        np.testing.assert_allclose(f32(g3.read_track(k)), -2 * f32(z), **F16)
        assert g3.track(k).samples == a.track(k).samples


def test_mix_commutes_and_extract_inverts(ab: tuple, tmp_path: Path) -> None:
    a, za, b, zb = ab
    ops.mix_stores([a, b], tmp_path / "ab")
    ops.mix_stores([b, a], tmp_path / "ba")
    ab_, ba_ = LatentStore.open(tmp_path / "ab"), LatentStore.open(tmp_path / "ba")
    assert ab_.keys() == ["x", "y", "z"]
    assert ba_.keys() == ["z", "x", "y"]
    for k in za:
        np.testing.assert_array_equal(ab_.read_track(k), ba_.read_track(k))
        n = min(za[k].shape[0], zb[k].shape[0])
        np.testing.assert_allclose(f32(ab_.read_track(k)), f32(za[k][:n]) + f32(zb[k][:n]), **F16)
    ops.extract_store(tmp_path / "ab", [b], tmp_path / "ex", length="shortest")
    ex = LatentStore.open(tmp_path / "ex")
    for k in za:
        n = ex.track(k).frames
        np.testing.assert_allclose(f32(ex.read_track(k)), f32(za[k][:n]), rtol=0, atol=1e-2)


def test_length_policies(ab: tuple, tmp_path: Path) -> None:
    a, za, b, zb = ab
    for length, want in (("shortest", [30, 50, 7]), ("longest", [30, 60, 10]), ("first", [30, 50, 7])):
        ops.mix_stores([a, b], tmp_path / length, [1.0, 0.5], length=length)
        m = LatentStore.open(tmp_path / length)
        assert [m.track(k).frames for k in "xyz"] == want
    m = LatentStore.open(tmp_path / "longest")
    y = f32(m.read_track("y"))
    np.testing.assert_allclose(y[50:], 0.5 * f32(zb["y"][50:]), **F16)  # A padded with zeros
    assert m.track("y").samples == b.track("y").samples
    assert LatentStore.open(tmp_path / "shortest").track("z").samples == a.track("z").samples


def test_pair_by_position_and_random(ab: tuple, tmp_path: Path) -> None:
    a, za, b, zb = ab
    ops.mix_stores([a, b], tmp_path / "pos", pair="position", length="first")
    pos = LatentStore.open(tmp_path / "pos")
    n = 10  # "z" of B (10 frames) pairs with "x" of A (30) at position 0
    np.testing.assert_allclose(f32(pos.read_track("x"))[:n], f32(za["x"][:n]) + f32(zb["z"]), **F16)
    runs = []
    for name, seed in (("r1", 7), ("r2", 7), ("r3", 8)):
        ops.mix_stores([a, b], tmp_path / name, pair="random", seed=seed, count=5)
        s = LatentStore.open(tmp_path / name)
        runs.append(np.concatenate([s.read_track(k) for k in s.keys()]))  # noqa: SIM118
    assert s.keys() == [f"mix-{i:08d}" for i in range(5)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].shape != runs[2].shape or not np.array_equal(runs[0], runs[2])


def test_random_gain_range(tmp_path: Path) -> None:
    one, zo = make_store(tmp_path / "one", [("t", 20)], seed=3)
    zero, _ = make_store(tmp_path / "zero", [("t", 20)], scale=0.0)
    ops.mix_stores([one, zero], tmp_path / "r", pair="random", seed=0, count=20, gain_range=(0.25, 0.75))
    r = LatentStore.open(tmp_path / "r")
    ref = f32(zo["t"]).ravel()
    for k in r.keys():  # noqa: SIM118 - LatentStore.keys()
        g = float(f32(r.read_track(k)).ravel() @ ref / (ref @ ref))
        assert 0.249 <= g <= 0.751


def test_random_pairs_are_computed_by_runs_of_tracks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A random pairing is gathered per block and computed in whole runs of tracks with
    per-frame gains: the same output with or without the chunk cache, and within one float16
    step of the track-by-track sums (one float32 rounding more than a fused multiply-add)."""
    tracks = [(f"t{i}", 3 + i % 7) for i in range(60)]
    a, _ = make_store(tmp_path / "A", tracks, seed=1)
    b, _ = make_store(tmp_path / "B", tracks, seed=2)
    kw = {"pair": "random", "seed": 3, "count": 80, "gain_range": (0.2, 0.9)}
    ops.mix_stores([a, b], tmp_path / "cached", **kw, options=OpOptions(max_block_frames=64))
    monkeypatch.setenv("LINCAE_CHUNK_CACHE_MB", "0")
    ops.mix_stores([a, b], tmp_path / "uncached", **kw, options=OpOptions(max_block_frames=64))
    # one track segment at a time, scalar gains
    by_track = OpOptions(max_block_frames=64, merge_runs=False)
    ops.mix_stores([a, b], tmp_path / "by-track", **kw, options=by_track)
    c, u, t = (LatentStore.open(tmp_path / n) for n in ("cached", "uncached", "by-track"))
    keys = c.keys()
    assert len(keys) == 80
    for k in keys:
        np.testing.assert_array_equal(c.read_track(k), u.read_track(k))
        want = f32(t.read_track(k))
        step = np.spacing(np.abs(want).astype(np.float16)).astype(np.float32)
        assert (np.abs(f32(c.read_track(k)) - want) <= step).all()


def test_runs_merge_contiguous_segments_and_split_on_gains() -> None:
    """kernel.runs: segments contiguous in the read and in the block form one run (merge), a
    gap or (split_gains) a gain change ends it; without merge, one segment a run."""
    n = np.array([3, 4, 2, 5])
    pos = np.concatenate([[0], np.cumsum(n)[:-1]])
    start = np.array([10, 13, 17, 30])  # the 4th segment is read elsewhere
    req = Request(np.arange(4), pos, start, start + n, np.zeros(4, np.int64))
    rows = np.array([0, 3, 7, 9])  # contiguous in the read, all four
    gains = np.array([0.5, 0.5, 0.25, 0.25])
    assert kernel.runs(req, rows, gains, merge=True, split_gains=False) == ([0], [4])
    assert kernel.runs(req, rows, gains, merge=True, split_gains=True) == ([0, 2], [2, 4])
    gap = np.array([0, 3, 8, 10])  # the 3rd segment does not follow the 2nd in the read
    assert kernel.runs(req, gap, gains, merge=True, split_gains=False) == ([0, 2], [2, 4])
    assert kernel.runs(req, rows, gains, merge=False, split_gains=False) == ([0, 1, 2, 3], [1, 2, 3, 4])


def test_missing_keys_error_or_skip(tmp_path: Path) -> None:
    a, _ = make_store(tmp_path / "A", A_TRACKS, seed=1)
    b, _ = make_store(tmp_path / "B", [("x", 30), ("w", 5), ("y", 9)], seed=2, failed=("y",))
    with pytest.raises(StoreMismatchError, match=r"3 track keys.*'y' \(missing from .*B\)"):
        ops.mix_stores([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    result = ops.mix_stores([a, b], tmp_path / "m", missing="skip")
    assert result.skipped == 3
    assert result.to_dict()["skipped"] == 3
    assert LatentStore.open(tmp_path / "m").keys() == ["x"]
    with pytest.raises(StoreMismatchError, match="different numbers of done tracks"):
        ops.mix_stores([a, b], tmp_path / "p", pair="position")


def test_refusals_between_models_and_geometries(ab: tuple, tmp_path: Path) -> None:
    a, _, _, _ = ab
    other, _ = make_store(tmp_path / "O", A_TRACKS, model_id="model-b")
    geo, _ = make_store(
        tmp_path / "G", A_TRACKS, geometry={"sample_rate": 16000, "samples_per_frame": 512, "latent_dim": 8}
    )
    with pytest.raises(StoreMismatchError, match="different models"):
        ops.mix_stores([a, other], tmp_path / "m")
    ops.mix_stores([a, other], tmp_path / "m", force=True)
    with pytest.raises(StoreMismatchError, match="geometry"):
        ops.mix_stores([a, geo], tmp_path / "n", force=True)
    with pytest.raises(ConfigError, match="expected 1 or 2 gains"):
        ops.mix_stores([a, other], tmp_path / "k", [1, 2, 3], force=True)


def test_lineage_recorded(ab: tuple, tmp_path: Path) -> None:
    a, _, b, _ = ab
    ops.mix_stores([a, b], tmp_path / "m", [0.5, 0.25], length="longest")
    ops.gain_store(tmp_path / "m", tmp_path / "g", 2.0)
    g = LatentStore.open(tmp_path / "g")
    mix_entry, gain_entry = g.lineage
    assert mix_entry["op"] == "mix"
    assert mix_entry["args"]["gains"] == [0.5, 0.25]
    assert [i["store_id"] for i in mix_entry["inputs"]] == [a.store_id, b.store_id]
    assert mix_entry["inputs"][1]["lineage"] == []
    assert gain_entry["op"] == "gain"
    assert gain_entry["args"] == {"gain": 2.0, "origin": "linear"}
    assert g.model_id == a.model_id
    assert g.geometry == a.geometry
    assert g.encoding == a.encoding


def test_only_done_tracks_are_processed(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "s", A_TRACKS, failed=("y",))
    ops.gain_store(s, tmp_path / "g", 1.0)
    assert LatentStore.open(tmp_path / "g").keys() == ["x", "z"]


def test_select_by_keys_and_time(ab: tuple, tmp_path: Path) -> None:
    a, za, _, _ = ab
    ops.select_store(a, tmp_path / "s", keys=["y", "x"], start_s=0.1, duration_s=0.2)
    s = LatentStore.open(tmp_path / "s")
    assert s.keys() == ["y", "x"]
    # 0.1 s = 6.25 frames -> frame 6; 0.2 s = 12.5 frames -> 13 frames, 3200 samples
    y = s.track("y")
    assert (y.frames, y.samples) == (13, 3200)
    np.testing.assert_array_equal(s.read_track("y"), za["y"][6:19])
    result = ops.select_store(a, tmp_path / "late", start_s=0.2)
    assert result.info["empty"] == 1  # "z" (7 frames) ends before frame 12
    assert LatentStore.open(tmp_path / "late").track("x").samples == 30 * 256 - 100 - 12 * 256
    with pytest.raises(StoreMismatchError, match="'nope'"):
        ops.select_store(a, tmp_path / "bad", keys=["x", "nope"])


def test_streaming_reads_are_bounded(ab: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _, b, _ = ab
    sizes: list[int] = []
    real_read = LatentArray.read

    def spy(self: LatentArray, start: int, stop: int, buffer: np.ndarray | None = None) -> np.ndarray:
        sizes.append(stop - start)
        return real_read(self, start, stop, buffer)

    monkeypatch.setattr(LatentArray, "read", spy)
    small = OpOptions(max_block_frames=32)
    ops.mix_stores([a, b], tmp_path / "m", length="longest", options=small)
    ops.mix_stores([a, b], tmp_path / "r", pair="random", seed=1, count=30, options=small)
    assert sizes
    assert max(sizes) <= 32


def test_parallel_jobs_match_sequential(ab: tuple, tmp_path: Path) -> None:
    a, _, b, _ = ab
    ops.mix_stores([a, b], tmp_path / "seq", options=OpOptions(max_block_frames=16))
    ops.mix_stores([a, b], tmp_path / "par", options=OpOptions(max_block_frames=16, jobs=2))
    s, p = LatentStore.open(tmp_path / "seq"), LatentStore.open(tmp_path / "par")
    for k in s.keys():  # noqa: SIM118 - LatentStore.keys()
        np.testing.assert_array_equal(s.read_track(k), p.read_track(k))


def test_outputs_are_atomic(ab: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _, _, _ = ab
    ops.gain_store(a, tmp_path / "out", 2.0)
    before = LatentStore.open(tmp_path / "out").store_id
    with pytest.raises(LincaeError, match="already exists"):
        ops.gain_store(a, tmp_path / "out", 3.0)
    with pytest.raises(LincaeError, match="also an input"):
        ops.gain_store(a, a.path, 3.0, options=OpOptions(overwrite=True))

    def killed(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(ops_engine, "run_unit", killed)
    with pytest.raises(KeyboardInterrupt):
        ops.gain_store(a, tmp_path / "out", 3.0, options=OpOptions(overwrite=True))
    monkeypatch.undo()
    assert LatentStore.open(tmp_path / "out").store_id == before  # old output intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B", "out"]  # no temp left
    ops.gain_store(a, tmp_path / "out", 3.0, options=OpOptions(overwrite=True))
    assert LatentStore.open(tmp_path / "out").store_id != before


def test_single_pass_gain_equals_the_float32_accumulation(tmp_path: Path) -> None:
    """gain takes one fused pass straight into the output dtype (kernel.direct, the default
    fused_pass); it writes what the general float32 block path (zero, accumulate, origin, cast:
    fused_pass=False) writes."""
    s, _ = make_store(tmp_path / "s", [("a", 37), ("b", 5), ("c", 70)], seed=4)
    s.write_origin(np.random.default_rng(5).standard_normal((3, 2, s.geometry.latent_dim)).astype(np.float32))
    for kind, fused in (("fused", True), ("general", False)):
        for origin in ("linear", "affine"):
            run = OpOptions(origin=origin, max_block_frames=32, fused_pass=fused)
            ops.gain_store(s, tmp_path / f"{kind}-{origin}", 0.3, options=run)
    for key in ("a", "b", "c"):
        fused, general = (
            LatentStore.open(tmp_path / f"{kind}-linear").read_track(key) for kind in ("fused", "general")
        )
        np.testing.assert_array_equal(fused, general)
        fused, general = (
            LatentStore.open(tmp_path / f"{kind}-affine").read_track(key).astype(np.float32)
            for kind in ("fused", "general")
        )
        # one fused multiply-add instead of two float32 roundings: at most one float16 step apart
        step = np.spacing(np.abs(general).astype(np.float16)).astype(np.float32)
        assert (np.abs(fused - general) <= step).all()


def test_direct_writes_a_covered_block_in_one_pass() -> None:
    """kernel.direct writes g * z (rounded once to the output dtype) for an input that covers the
    block, and declines (writes nothing) one that leaves a gap."""
    rng = np.random.default_rng(6)
    z = rng.standard_normal((10, 2, 4)).astype(np.float16)
    dst, tmp = torch.zeros(10, 2, 4, dtype=torch.float16), torch.empty(10, 2, 4)
    segs = Segments(np.array([0, 1]), np.array([0, 0]), np.array([6, 4]), np.array([0, 6]))
    req = Request(np.array([0, 1]), np.array([0, 6]), np.array([0, 6]), np.array([6, 10]), np.array([0, 0]))
    got = Got(z, np.array([0, 6]))
    gains = np.array([0.3, 0.3])
    assert kernel.direct(dst, tmp, req, got, segs, gains, None)
    want = (torch.from_numpy(z).float() * 0.3).half()
    assert torch.equal(dst, want)
    short = Request(req.track, req.pos, req.start, np.array([6, 9]), req.local)  # frame 9 is silence
    dst.zero_()
    assert not kernel.direct(dst, tmp, short, got, segs, gains, None)
    assert not dst.any()


def test_float16_overflow_is_refused(tmp_path: Path) -> None:
    s, _ = make_store(tmp_path / "s", [("t", 8)], scale=100.0)
    with pytest.raises(LincaeError, match="overflows float16"):
        ops.gain_store(s, tmp_path / "g", 1e4)
    assert not (tmp_path / "g").exists()
    ops.gain_store(s, tmp_path / "g", 1e4, options=OpOptions(dtype="float32"))


def test_progress_counts_every_frame(ab: tuple, tmp_path: Path) -> None:
    a, _, b, _ = ab
    seen: list[int] = []
    result = ops.mix_stores(
        [a, b], tmp_path / "m", options=OpOptions(progress=seen.append, max_block_frames=16)
    )
    assert len(seen) > 1
    assert sum(seen) == LatentStore.open(tmp_path / "m").total_frames >= result.frames


def test_affine_origin_algebra_on_real_stores(tmp_path: Path) -> None:
    """--origin affine: gain a·z + (1−a)·o, mix Σg z + (1−Σg)·o, and silence (padding) is o."""
    a, za = make_store(tmp_path / "A", [("x", 20), ("y", 9)], seed=1, dtype="float32")
    b, zb = make_store(tmp_path / "B", [("x", 12), ("y", 9)], seed=2, dtype="float32")
    frames = np.random.default_rng(3).standard_normal((5, 2, a.geometry.latent_dim)).astype(np.float32)
    a.write_origin(frames)
    o = frames.mean(0)
    assert np.allclose(a.origin(), o)
    ops.gain_store(a, tmp_path / "g", 0.25, options=OpOptions(origin="affine"))
    g = LatentStore.open(tmp_path / "g")
    np.testing.assert_allclose(g.read_track("x"), 0.25 * za["x"] + 0.75 * o, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g.origin_frames(), frames)  # the output keeps Enc(0)
    ops.mix_stores([a, b], tmp_path / "m", [0.5, 1.0], length="longest", options=OpOptions(origin="affine"))
    m = LatentStore.open(tmp_path / "m").read_track("x")
    np.testing.assert_allclose(m[:12], 0.5 * za["x"][:12] + zb["x"] + (1 - 1.5) * o, rtol=1e-5, atol=1e-5)
    # beyond B's 12 frames, B is silence: its latent is Enc(0), so only A's gain counts
    np.testing.assert_allclose(m[12:], 0.5 * za["x"][12:] + 0.5 * o, rtol=1e-5, atol=1e-5)
    ops.extract_store(
        tmp_path / "m", [b], tmp_path / "e", length="shortest", options=OpOptions(origin="affine")
    )
    e = LatentStore.open(tmp_path / "e").read_track("y")
    np.testing.assert_allclose(e, 0.5 * za["y"] + 0.5 * o, rtol=1e-5, atol=1e-5)  # the affine ops invert
    with pytest.raises(LincaeError, match="no Enc"):
        ops.gain_store(b, tmp_path / "n", 0.5, options=OpOptions(origin="affine"))
    assert LatentStore.open(tmp_path / "g").lineage[-1]["args"]["origin"] == "affine"


def test_affine_origin_goes_through_a_fade(tmp_path: Path) -> None:
    """With per-frame gains the affine form is a(t)·(z − o) + o: silence stays Enc(0)."""
    from lincae_core.ops.envelopes import fade_gains, frame_centres

    a, za = make_store(tmp_path / "A", [("x", 60)], seed=1, dtype="float32")
    frames = np.random.default_rng(3).standard_normal((4, 2, a.geometry.latent_dim)).astype(np.float32)
    a.write_origin(frames)
    o = frames.mean(0)
    ops.gain_store(
        a, tmp_path / "f", 1.0, fade_in_s=0.5, options=OpOptions(origin="affine", max_block_frames=16)
    )
    got = LatentStore.open(tmp_path / "f").read_track("x")
    t = a.track("x")
    g = fade_gains(frame_centres(0, 60, 256, 16000), t.samples / 16000, 0.5, 0.0)[:, None, None]
    np.testing.assert_allclose(got, g * (za["x"] - o) + o, rtol=1e-5, atol=1e-5)


def test_options_object_or_keywords_and_the_json_record(ab: tuple, tmp_path: Path) -> None:
    """OpOptions fields may be given as keywords (folded into the options); an unknown keyword
    is refused. The result's to_dict() is the --json record, key for key."""
    a, _, b, _ = ab
    r = ops.gain_store(a, tmp_path / "g", 2.0, options=OpOptions(jobs=1), max_block_frames=16)
    assert list(r.to_dict()) == ["op", "out", "tracks", "frames", "origin", "skipped", "gain_extremes"]
    record = r.to_dict()
    extremes = record.pop("gain_extremes")  # the smallest and largest gain a track got, and where
    assert {extremes["min"]["gain"], extremes["max"]["gain"]} == {2.0}
    assert record == {
        "op": "gain",
        "out": str(tmp_path / "g"),
        "tracks": 3,
        "frames": 87,
        "origin": "linear",
        "skipped": 0,
    }
    with pytest.raises(TypeError, match="bogus"):
        ops.gain_store(a, tmp_path / "h", 2.0, bogus=1)
    r = ops.mix_stores([a, b], tmp_path / "r", pair="random", seed=5, count=2)
    assert list(r.to_dict()) == ["op", "out", "tracks", "frames", "origin", "seed"]
    assert (r.seed, r.skipped) == (5, 0)
    r = ops.select_store(a, tmp_path / "s", start_s=0.2)
    assert list(r.to_dict()) == ["op", "out", "tracks", "frames", "origin", "empty", "start_frame"]
