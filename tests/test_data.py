"""lincae_core.data: LatentWindows and LatentMixtures on real stores (exactly once per epoch over
DDP ranks × DataLoader workers, seeded reproducibility, mid-epoch resume, Enc(0) padding, the
linear and affine mixtures, refusals)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from _latent_stores import make_store
from torch.utils.data import DataLoader

from lincae_core import LatentMixtures, LatentWindows
from lincae_core.data import collate
from lincae_core.errors import ConfigError, StoreMismatchError

TRACKS = [("a", 40), ("b.x", 9), ("c", 70), ("d", 33)]


@pytest.fixture
def stems(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for i, name in enumerate(("vocals", "drums", "bass", "other")):
        s, _ = make_store(tmp_path / f"{name}.zarr", TRACKS, seed=10 + i, dtype="float32")
        s.write_origin(np.full((4, 2, 8), 0.25 + i, np.float32))
        out[name] = s.path
    return out


def _loader(ds: LatentWindows | LatentMixtures, workers: int, **kw: object) -> DataLoader:
    """Batches of 3: the DataLoader's (items + collate), or the dataset's own (batch_size=3)."""
    if ds.batch_size is None:
        return DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate, **kw)
    return DataLoader(ds, batch_size=None, num_workers=workers, **kw)


def _ids(ds: LatentWindows | LatentMixtures, workers: int) -> list[tuple[int, int]]:
    loader = _loader(ds, workers)
    return [(int(e), int(i)) for b in loader for e, i in zip(b["epoch"], b["index"], strict=True)]


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("kind", ["windows", "mixtures"])
def test_every_item_once_per_epoch_over_2_ranks_x_2_workers(
    kind: str, batch_size: int | None, stems: dict[str, Path]
) -> None:
    seen: list[tuple[int, int]] = []
    for epoch in (0, 1):
        for rank in (0, 1):
            if kind == "windows":
                ds: LatentWindows | LatentMixtures = LatentWindows(
                    [stems["vocals"], stems["drums"]],
                    window_frames=8,
                    rank=rank,
                    world_size=2,
                    batch_size=batch_size,
                )
            else:
                ds = LatentMixtures(
                    stems, window_frames=8, length=23, rank=rank, world_size=2, batch_size=batch_size
                )
            ds.set_epoch(epoch)
            seen += _ids(ds, workers=2)
    n = ds.length
    assert n > 20
    dup = [k for k, c in Counter(seen).items() if c > 1]
    assert not dup, f"duplicates: {dup[:5]}"
    assert sorted(seen) == [(e, i) for e in (0, 1) for i in range(n)], "a gap"


def test_items_depend_on_seed_epoch_index_only(stems: dict[str, Path]) -> None:
    ds = LatentMixtures(stems, window_frames=8, length=12, seed=3)
    ds.set_epoch(2)
    one = {int(b["index"]): b for b in (ds.item(i) for i in range(12))}
    par = {int(b["index"]): b for b in DataLoader(ds, batch_size=None, num_workers=2)}
    for i, b in one.items():
        torch.testing.assert_close(par[i]["mixture"], b["mixture"], rtol=0, atol=0)
        torch.testing.assert_close(par[i]["targets"], b["targets"], rtol=0, atol=0)
    ds.set_epoch(3)
    assert not torch.equal(ds.item(0)["gains"], one[0]["gains"])


def test_resume_mid_epoch_gives_the_same_sequence(stems: dict[str, Path]) -> None:
    ds = LatentWindows(stems["vocals"], window_frames=8, seed=1, length=20)
    ds.set_epoch(4)
    full = [(it["key"], it["start_frame"]) for it in ds]
    assert ds.epoch == 5  # a complete iteration moves on to the next epoch
    ds.set_epoch(4)
    it = iter(ds)
    head = [next(it) for _ in range(7)]
    state = ds.state_dict()
    assert state == {"seed": 1, "epoch": 4, "yielded": 7}
    again = LatentWindows(stems["vocals"], window_frames=8, seed=99, length=20)
    again.load_state_dict(state)
    rest = [(x["key"], x["start_frame"]) for x in again]
    assert [(x["key"], x["start_frame"]) for x in head] + rest == full


@pytest.mark.parametrize("batch_size", [None, 2])
def test_stateful_dataloader_resumes_with_workers(batch_size: int | None, stems: dict[str, Path]) -> None:
    sdl = pytest.importorskip("torchdata.stateful_dataloader")

    def loader() -> torch.utils.data.DataLoader:
        ds = LatentMixtures(stems, window_frames=8, length=22, seed=5, batch_size=batch_size)
        if batch_size is None:
            return sdl.StatefulDataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
        return sdl.StatefulDataLoader(ds, batch_size=None, num_workers=2)

    full = [(b["index"].tolist(), b["mixture"]) for b in loader()]
    dl = loader()
    it = iter(dl)
    head = [next(it) for _ in range(4)]
    state = dl.state_dict()
    dl2 = loader()
    dl2.load_state_dict(state)
    rest = [(b["index"].tolist(), b["mixture"]) for b in dl2]
    got = [(b["index"].tolist(), b["mixture"]) for b in head] + rest
    assert [i for i, _ in got] == [i for i, _ in full]
    for (_, a), (_, b) in zip(got, full, strict=True):
        assert torch.equal(a, b)
    assert sorted(i for b, _ in full for i in b) == list(range(22))


def test_validation_windows_tile_every_track_with_enc0_padding(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "s.zarr", [("a", 20), ("short", 5), ("gone", 9)], failed=["gone"])
    origin = np.random.default_rng(0).standard_normal((3, 2, 8)).astype(np.float32)
    s.write_origin(origin)
    md = tmp_path / "m.jsonl"
    md.write_text('{"key": "a", "prompt": "calm"}\n')
    ds = LatentWindows(s.path, window_frames=8, random_crop=False, metadata=md)
    assert ds.skipped == 1
    items = list(ds)
    assert [(x["key"], x["start_frame"]) for x in items] == [("a", 0), ("a", 8), ("a", 16), ("short", 0)]
    last = items[-1]
    assert last["padding_mask"].tolist() == [True] * 5 + [False] * 3
    z = last["latents"].numpy()  # [C, D, T]
    np.testing.assert_array_equal(z[:, :, :5], zs["short"].astype(np.float32).transpose(1, 2, 0))
    for t in range(5, 8):
        np.testing.assert_allclose(z[:, :, t], origin.mean(0))  # Enc(0), not zeros
    assert items[0]["metadata"] == {"prompt": "calm"}
    assert last["metadata"] == {}
    assert items[1]["seconds_start"] == pytest.approx(8 * 256 / 16000)
    assert last["seconds_total"] == pytest.approx((5 * 256 - 100) / 16000)
    batch = collate(items[:2])
    assert batch["latents"].shape == (2, 2, 8, 8)
    assert batch["key"] == ["a", "a"]


def test_random_crops_follow_store_weights_and_salient_redraws(tmp_path: Path) -> None:
    a, _ = make_store(tmp_path / "a.zarr", [("x", 50)], seed=1)
    b, _ = make_store(tmp_path / "b.zarr", [("y", 50)], seed=2, scale=0.001)  # near Enc(0) = 0
    ds = LatentWindows([a.path, b.path], window_frames=8, weights=[1, 3], length=400)
    stores = Counter(ds.item(i)["store"] for i in range(400))
    assert 0.65 < stores[1] / 400 < 0.85
    sal = LatentWindows(
        [a.path, b.path], window_frames=8, weights=[1, 3], length=200, salient=True, salient_tries=30
    )
    assert Counter(sal.item(i)["store"] for i in range(200))[1] < 5  # silent crops redrawn
    for i in range(50):
        x = ds.item(i)
        assert 0 <= x["start_frame"] <= 42
        assert x["padding_mask"].all()


def test_mixtures_linear_and_affine(stems: dict[str, Path]) -> None:
    for origin in ("linear", "affine"):
        ds = LatentMixtures(stems, window_frames=8, seed=2, origin=origin, min_stems=2, length=30)
        assert ds.stems == ["vocals", "drums", "bass", "other"]
        assert ds.gain_range == (0.5, 1.5)  # the synthetic card records no training
        o = ds.sources[0].origin[:, :, None]
        for i in range(30):
            x = ds.item(i)
            g, present = x["gains"].numpy(), x["present"].numpy()
            assert 2 <= present.sum() <= 4
            assert ((g >= 0.5) & (g <= 1.5) | ~present).all()
            assert len(set(x["keys"])) == 1
            assert len(set(x["start_frames"].tolist())) == 1
            raw = []
            for s in range(len(ds.stems)):
                src = ds.sources[s]
                z, _ = src.window(src.index[x["keys"][s]], int(x["start_frames"][s]), 8)
                raw.append(z.transpose(1, 2, 0))
            lin = sum(g[s] * raw[s] for s in range(4) if present[s])
            want = lin if origin == "linear" else lin + (1 - g.sum()) * o
            np.testing.assert_allclose(x["mixture"].numpy(), want, rtol=1e-5, atol=1e-5)
            for s in range(4):
                t = g[s] * raw[s] if present[s] else np.zeros_like(raw[s])
                if origin == "affine":
                    t = t + (1 - g[s]) * o
                np.testing.assert_allclose(x["targets"][s].numpy(), t, rtol=1e-5, atol=1e-5)
    cross = LatentMixtures(stems, window_frames=8, cross_track=True, length=40)
    assert any(len(set(cross.item(i)["keys"])) > 1 for i in range(40))


def test_mixtures_default_origin_and_gain_range_come_from_the_card(stems: dict[str, Path]) -> None:
    from lincae_core.store import LatentStore

    for p in stems.values():
        s = LatentStore.open(p, "r+")
        s._set_attr(
            "model",
            {
                **s.attrs["model"],
                "card": {"origin_default": "affine", "training": {"gain_range": [0.2, 2.0]}},
            },
        )
    ds = LatentMixtures(stems, window_frames=8)
    assert (ds.origin, ds.gain_range) == ("affine", (0.2, 2.0))


def test_unpaired_and_unfinished_tracks_are_skipped_and_other_models_refused(tmp_path: Path) -> None:
    v, _ = make_store(tmp_path / "vocals.zarr", [("a", 20), ("b", 20), ("c", 20)], failed=["c"])
    d, _ = make_store(tmp_path / "drums.zarr", [("a", 20), ("b", 20), ("z", 20)])
    ds = LatentMixtures([v.path, d.path], window_frames=8)
    assert (ds.keys, ds.skipped, ds.stems) == (["a", "b"], 2, ["vocals", "drums"])
    other, _ = make_store(tmp_path / "bass.zarr", [("a", 20)], model_id="model-b")
    with pytest.raises(StoreMismatchError, match="model"):
        LatentMixtures([v.path, other.path], window_frames=8)
    with pytest.raises(StoreMismatchError, match="model"):
        LatentWindows([v.path, other.path], window_frames=8)


def test_a_random_crop_reads_about_one_chunk_range(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "s.zarr", [("a", 400), ("b", 300)], chunk_frames=16, dtype="float32")
    ds = LatentWindows(s.path, window_frames=8, length=50, cache_bytes=4 * 16 * 2 * 8 * 4)
    for i in range(50):
        before = ds.sources[0].reader.misses
        x = ds.item(i)
        assert ds.sources[0].reader.misses - before <= 2  # the chunk(s) the window overlaps
        z = zs[x["key"]][x["start_frame"] : x["start_frame"] + 8]
        np.testing.assert_array_equal(x["latents"].numpy(), z.transpose(1, 2, 0))
    assert len(ds.sources[0].reader._chunks) <= 4  # the cache stays within its budget


@pytest.mark.parametrize("batch_size", [None, 4])
def test_persistent_workers_move_on_to_the_next_epoch(batch_size: int | None, stems: dict[str, Path]) -> None:
    ds = LatentMixtures(stems, window_frames=8, length=10, batch_size=batch_size)
    loader = _loader(ds, workers=2, persistent_workers=True)
    epochs = [sorted({int(e) for b in loader for e in b["epoch"]}) for _ in range(3)]
    assert epochs == [[0], [1], [2]]


def test_rank_and_world_size_come_from_torch_distributed(tmp_path: Path) -> None:
    import torch.distributed as dist

    from lincae_core.data.base import reader_slot

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert reader_slot() == (0, 1)
        assert reader_slot(rank=1, world_size=2) == (1, 2)
    finally:
        dist.destroy_process_group()
    with pytest.raises(ValueError, match="rank 2"):
        reader_slot(rank=2, world_size=2)


def _same(a: object, b: object) -> bool:
    """Equal values, bit for bit when tensors or arrays (numbers: a tensor and a numpy array)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _one_block(batch: dict) -> bool:
    """Every tensor of a batch is a view of one memory block (one shared-memory hand-over a batch
    from a DataLoader worker, whatever the number of fields)."""
    ptrs = {v.untyped_storage().data_ptr() for v in batch.values() if isinstance(v, torch.Tensor)}
    return len(ptrs) == 1


@pytest.mark.parametrize("origin", ["linear", "affine"])
def test_batches_are_the_collated_items_in_one_block(origin: str, stems: dict[str, Path]) -> None:
    mixtures = LatentMixtures(stems, window_frames=8, length=30, seed=4, origin=origin, batch_size=7)
    windows = LatentWindows([stems["vocals"], stems["drums"]], window_frames=8, weights=[1, 2], batch_size=7)
    for ds in (mixtures, windows):
        ds.set_epoch(3)
        idx = [0, 5, 2, 11, 29 if ds is mixtures else 12, 8, 1]
        made, items = ds.batch(idx), ds.items(idx)
        assert [ds.item(i)["index"] for i in idx] == [it["index"] for it in items] == idx
        for one, alone in zip(items, (ds.item(i) for i in idx), strict=True):  # together or alone: the same
            assert one.keys() == alone.keys()
            assert all(_same(one[k], alone[k]) for k in one)
        ref = collate(items)
        assert made.keys() == ref.keys()
        for k in ref:
            assert _same(made[k], ref[k]), k
            if isinstance(ref[k], np.ndarray):  # numbers: numpy from collate, tensors in a batch
                assert isinstance(made[k], torch.Tensor)
        assert _one_block(made)
        assert _one_block(ref)
    assert len(mixtures) == 5
    assert len(DataLoader(mixtures, batch_size=None)) == 5
    assert len(LatentMixtures(stems, window_frames=8, length=30)) == 30


def test_batches_from_workers_arrive_as_one_shared_block(stems: dict[str, Path]) -> None:
    ds = LatentMixtures(stems, window_frames=8, length=12, batch_size=3)
    for loader in (_loader(ds, workers=2), DataLoader(ds.items(range(12)), batch_size=3, collate_fn=collate)):
        batches = list(loader)
        assert len(batches) == 4
        assert all(_one_block(b) for b in batches)
    for b in _loader(ds, workers=2):
        assert b["mixture"].is_shared()


@pytest.mark.parametrize("dtype", [torch.float16, "bfloat16"])
def test_half_float_latents_are_the_float32_ones_rounded_once(dtype: object, stems: dict[str, Path]) -> None:
    full = LatentMixtures(stems, window_frames=8, length=6, seed=1, origin="affine")
    half = LatentMixtures(stems, window_frames=8, length=6, seed=1, origin="affine", dtype=dtype)
    want = half.dtype
    assert want in (torch.float16, torch.bfloat16)
    for i in range(6):
        a, b = full.item(i), half.item(i)
        for k in ("mixture", "targets"):
            assert b[k].dtype == want
            assert torch.equal(b[k], a[k].to(want))
        assert torch.equal(b["gains"], a["gains"])  # gains stay float32
    made = half.batch(range(6))
    assert torch.equal(made["targets"], torch.stack([full.item(i)["targets"] for i in range(6)]).to(want))
    win = LatentWindows(stems["vocals"], window_frames=8, length=4, dtype=dtype)
    assert win.item(0)["latents"].dtype == want
    with pytest.raises(ConfigError, match="dtype"):
        LatentWindows(stems["vocals"], window_frames=8, dtype=torch.int8)
    with pytest.raises(ConfigError, match="batch_size"):
        LatentWindows(stems["vocals"], window_frames=8, batch_size=0)


def test_stems_of_different_storage_dtypes_mix(tmp_path: Path) -> None:
    a, za = make_store(tmp_path / "vocals.zarr", [("x", 30)], seed=1, dtype="float16")
    b, zb = make_store(tmp_path / "drums.zarr", [("x", 30)], seed=2, dtype="float32")
    ds = LatentMixtures([a.path, b.path], window_frames=8, min_stems=2, origin="linear", length=5)
    for i in range(5):
        x = ds.item(i)
        s, g = int(x["start_frame"]), x["gains"].numpy()
        want = sum(
            g[j] * z["x"][s : s + 8].astype(np.float32).transpose(1, 2, 0) for j, z in enumerate((za, zb))
        )
        np.testing.assert_allclose(x["mixture"].numpy(), want, rtol=1e-6, atol=1e-6)
