"""The latent operations on a real dask.distributed cluster: byte-identical to --jobs 1 (the
export's: tests/test_export.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import ops
from lincae_core.ops import OpOptions

distributed = pytest.importorskip("distributed", reason="pip install 'lincae[dask]'")


def digest(store: Path) -> dict[str, str]:
    """SHA-256 of every file of a store but its attributes (ids and times differ by design)."""
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c


@pytest.mark.slow
def test_ops_on_a_local_cluster_match_one_job(tmp_path: Path, cluster) -> None:  # noqa: ANN001
    tracks = [(f"t{i:03d}", 5 + (i * 37) % 90) for i in range(120)]
    make_store(tmp_path / "A", tracks, seed=1, chunk_frames=64)
    make_store(tmp_path / "B", tracks, seed=2, chunk_frames=64)
    for name, run in (
        ("gain", lambda out, opts: ops.gain_store(tmp_path / "A", out, 0.5, options=opts)),
        (
            "mix",
            lambda out, opts: ops.mix_stores(
                [tmp_path / "A", tmp_path / "B"], out, [0.5, 2.0], pair="random", seed=7, options=opts
            ),
        ),
        (
            "extract",
            lambda out, opts: ops.extract_store(tmp_path / "A", [tmp_path / "B"], out, options=opts),
        ),
    ):
        run(tmp_path / f"{name}-1", OpOptions(max_block_frames=128, jobs=1))
        run(tmp_path / f"{name}-dask", OpOptions(max_block_frames=128, scheduler=cluster.scheduler_address))
        assert digest(tmp_path / f"{name}-1") == digest(tmp_path / f"{name}-dask"), name
    assert len(cluster.workers) == 2  # two worker processes did the work


@pytest.mark.slow
def test_cli_scheduler_from_option_env_and_file(tmp_path: Path, cluster, monkeypatch) -> None:  # noqa: ANN001
    make_store(tmp_path / "A", [("x", 40), ("y", 70)], seed=1, chunk_frames=16)
    r = CliRunner().invoke(cli, ["gain", str(tmp_path / "A"), "--gain", "2", "-o", str(tmp_path / "one")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        cli,
        [
            "gain",
            str(tmp_path / "A"),
            "--gain",
            "2",
            "-o",
            str(tmp_path / "opt"),
            "--scheduler",
            cluster.scheduler_address,
        ],
    )
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("LINCAE_SCHEDULER", cluster.scheduler_address)
    r = CliRunner().invoke(cli, ["gain", str(tmp_path / "A"), "--gain", "2", "-o", str(tmp_path / "env")])
    assert r.exit_code == 0, r.output
    sched = tmp_path / "scheduler.json"
    sched.write_text(json.dumps({"address": cluster.scheduler_address, "type": "Scheduler"}))
    monkeypatch.setenv("LINCAE_SCHEDULER", str(sched))
    r = CliRunner().invoke(cli, ["gain", str(tmp_path / "A"), "--gain", "2", "-o", str(tmp_path / "file")])
    assert r.exit_code == 0, r.output
    one = digest(tmp_path / "one")
    assert one == digest(tmp_path / "opt") == digest(tmp_path / "env") == digest(tmp_path / "file")
    monkeypatch.setenv("LINCAE_SCHEDULER", "tcp://127.0.0.1:9")
    r = CliRunner().invoke(cli, ["gain", str(tmp_path / "A"), "--gain", "2", "-o", str(tmp_path / "bad")])
    assert r.exit_code == 1
    assert "cannot reach the Dask scheduler" in r.output


@pytest.mark.slow
def test_relative_paths_work_on_workers_in_another_directory(
    tmp_path: Path, cluster, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """The workers started elsewhere (the cluster's cwd): relative paths are sent absolute."""
    tracks = [(f"t{i:03d}", 20) for i in range(12)]
    make_store(tmp_path / "A.zarr", tracks, seed=1, chunk_frames=64)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        cli, ["gain", "A.zarr", "--gain", "0.5", "-o", "g.zarr", "--scheduler", cluster.scheduler_address]
    )
    assert r.exit_code == 0, r.output
    ops.gain_store("A.zarr", "g1.zarr", 0.5, options=OpOptions(jobs=1))
    assert digest(tmp_path / "g.zarr") == digest(tmp_path / "g1.zarr")
    r = CliRunner().invoke(
        cli,
        ["export", "A.zarr", "shards/%03d.tar", "--window", "0.3", "--scheduler", cluster.scheduler_address],
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "shards").iterdir())[0] == "000.tar"
