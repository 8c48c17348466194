"""lincae stats: streamed per-dimension mean/std of the latents, stored in the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import LatentStore, stats_store
from lincae_core.errors import StoreFormatError
from lincae_core.ops.stats import compute_stats, merge_moments

TRACKS = [("x", 30), ("y", 50), ("z", 7), ("w", 11)]


def test_stats_match_numpy_on_done_tracks_whatever_the_block(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "A", TRACKS, seed=3, failed=("z",), scale=0.3)
    all_z = np.concatenate([zs[k].astype(np.float64) for k in ("x", "y", "w")])  # done tracks only
    for block in (1, 7, 16, 10_000):
        st = compute_stats(s, block_frames=block)
        np.testing.assert_allclose(st["mean"], all_z.mean(axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(st["std"], all_z.std(axis=0), rtol=1e-10)
    assert (st["count_frames"], st["count_tracks"], st["version"]) == (91, 3, 1)
    assert np.asarray(st["mean"]).shape == (2, 8)  # per channel, per dimension


def test_merge_moments_is_exact_pairwise() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(9, 3))
    n, m, m2 = merge_moments(
        (5, a.mean(0), ((a - a.mean(0)) ** 2).sum(0)), (9, b.mean(0), ((b - b.mean(0)) ** 2).sum(0))
    )
    ab = np.concatenate([a, b])
    np.testing.assert_allclose(m, ab.mean(0))
    np.testing.assert_allclose(m2 / n, ab.var(0))


def test_stats_stored_versioned_and_validated(tmp_path: Path) -> None:
    make_store(tmp_path / "A", TRACKS, seed=3)
    result = stats_store(tmp_path / "A")
    store = LatentStore.open(tmp_path / "A")
    assert store.stats == result.stats == result.to_dict()["stats"]
    assert store.stats["version"] == 1
    bad = LatentStore.open(tmp_path / "A", "r+")
    with pytest.raises(StoreFormatError, match="stats.mean"):
        bad.set_stats({**result.stats, "mean": [[0.0]]})


def test_stats_cli_prints_the_store_and_exits_3_on_left_out(tmp_path: Path) -> None:
    make_store(tmp_path / "A", TRACKS, seed=3, failed=("z",))
    r = CliRunner().invoke(cli, ["stats", str(tmp_path / "A")])
    assert r.exit_code == 3, r.output
    assert r.stdout == f"{tmp_path / 'A'}\n"
    assert "left out 0 planned and 1 failed" in r.stderr
    make_store(tmp_path / "B", TRACKS, seed=3)
    r = CliRunner().invoke(cli, ["stats", str(tmp_path / "B"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stats"]["count_tracks"] == 4
