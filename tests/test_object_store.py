"""Every command on S3 object storage, against a real S3 API (moto's server on 127.0.0.1), through
the installed ``lincae`` console script: the same latents, bytes and audio as on a local disk."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from _audio import write_library
from _s3 import s3_env, s3_server  # noqa: F401

from lincae_core.store import LatentStore

LINCAE = shutil.which("lincae") or f"{sys.executable} -m lincae_cli"


def lincae(
    *args: str, env: dict[str, str], code: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the installed console script; check its exit status."""
    proc = subprocess.run(
        [*LINCAE.split(), *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert proc.returncode == code, f"lincae {' '.join(args)} -> {proc.returncode}\n{proc.stderr}"
    return proc


def make_library(root: Path, n: int = 3) -> Path:
    """A few short WAVs of different lengths (one stereo at 44.1 kHz)."""
    return write_library(root, n, seconds=(1.5, 0.7), odd_rate=44100, seed=0, name="song")


def same_store(a: str, b: str) -> None:
    """Two stores hold the same tracks, rows and latents (store ids and paths may differ)."""
    sa, sb = LatentStore.open(a), LatentStore.open(b)
    ta, tb = sa.table(), sb.table()
    assert set(ta) == set(tb)
    for col in ta:
        assert np.array_equal(ta[col], tb[col]), (a, col)
    for k in ta["key"].tolist():
        assert np.array_equal(sa.read_track(k), sb.read_track(k)), (a, k)
    assert sa.attrs["model"] == sb.attrs["model"]
    ea, eb = dict(sa.encoding or {}), dict(sb.encoding or {})
    # what identifies the inputs: sizes and mtimes on disk, sizes and ETags in a bucket
    assert (ea.pop("inputs_sha256", None) is None) == (eb.pop("inputs_sha256", None) is None)
    assert ea == eb


def tar_members(data: bytes) -> list[tuple[str, bytes]]:
    """A shard's members with the store id masked (each store has its own)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            body = tf.extractfile(m).read()  # type: ignore[union-attr]
            if m.name.endswith(".json"):
                rec = json.loads(body)
                rec.pop("store_id", None)
                body = json.dumps(rec, sort_keys=True).encode()
            out.append((m.name, body))
    return out


@pytest.mark.slow
def test_round_trip_on_a_bucket_equals_local_disk(s3_server, s3_env, tmp_path: Path) -> None:  # noqa: F811
    """encode (audio read from the bucket) -> gain -> mix -> extract -> select -> concat -> decode ->
    export, every store and file in the bucket, against the same commands on a local disk."""
    import s3fs

    env = {**os.environ, **s3_server.env()}
    lib = make_library(tmp_path / "library")
    fs = s3fs.S3FileSystem()
    fs.put(str(lib) + "/", f"{s3_env}/library/", recursive=True)
    keys = tmp_path / "keys.txt"
    keys.write_text("song2\nsong0\n")
    bucket, local = f"s3://{s3_env}", tmp_path / "local"
    local.mkdir()
    for root, src in ((bucket, f"s3://{s3_env}/library"), (str(local), str(lib))):
        out = lincae("encode", src, f"{root}/a.zarr", env=env).stdout.strip()
        assert out == f"{root}/a.zarr"  # the store's URL alone on stdout: commands chain
        lincae("gain", f"{root}/a.zarr", "--gain", "0.5", "-o", f"{root}/g.zarr", env=env)
        lincae("mix", f"{root}/a.zarr", f"{root}/g.zarr", "--gain", "0.7", "-o", f"{root}/m.zarr", env=env)
        lincae("extract", f"{root}/m.zarr", "--minus", f"{root}/g.zarr", "-o", f"{root}/e.zarr", env=env)
        lincae(
            "select",
            f"{root}/e.zarr",
            "--keys-from",
            str(keys),
            "--start",
            "0.25",
            "-o",
            f"{root}/s.zarr",
            env=env,
        )
        lincae("concat", f"{root}/a.zarr", "--keys-from", str(keys), "-o", f"{root}/c.zarr", env=env)
        lincae("decode", f"{root}/s.zarr", f"{root}/audio", env=env)
        lincae(
            "export", f"{root}/c.zarr", f"{root}/shards/%06d.tar", "--window", "1", "--maxcount", "2", env=env
        )
    for name in ("a", "g", "m", "e", "s", "c"):
        same_store(f"{bucket}/{name}.zarr", str(local / f"{name}.zarr"))
    for wav in sorted((local / "audio").glob("*.wav")):
        assert fs.cat(f"{s3_env}/audio/{wav.name}") == wav.read_bytes(), wav.name
    local_shards = sorted((local / "shards").glob("*.tar"))
    assert [p.name for p in local_shards] == sorted(Path(p).name for p in fs.find(f"{s3_env}/shards"))
    for p in local_shards:
        assert tar_members(fs.cat(f"{s3_env}/shards/{p.name}")) == tar_members(p.read_bytes())
    # ls and info read the bucket store; the lineage names the bucket URLs
    assert lincae("ls", f"{bucket}/a.zarr", env=env).stdout.split("\t")[0] == "song0"
    info = json.loads(lincae("info", f"{bucket}/m.zarr", "--json", env=env).stdout)
    assert info["path"] == f"{bucket}/m.zarr"
    assert [i["path"] for i in info["lineage"][-1]["inputs"]] == [f"{bucket}/a.zarr", f"{bucket}/g.zarr"]
    # nothing local was made by the bucket runs (the old bug: a folder named 's3:')
    assert not (tmp_path / "s3:").exists()
    assert not Path("s3:").exists()


def test_op_outputs_without_o_go_beside_the_input_in_the_bucket(s3_server, s3_env, tmp_path: Path) -> None:  # noqa: F811
    from lincae_core.ops import gain_store, mix_stores
    from lincae_core.store.synthetic import synthetic_store

    a = f"s3://{s3_env}/lib/a.zarr"
    synthetic_store(a, [("x", 300), ("y", 170)], chunk_frames=64)
    first = gain_store(a, None, 0.5).out
    second = gain_store(a, None, 0.5).out
    assert (first, second) == (f"s3://{s3_env}/lib/a.gain.zarr", f"s3://{s3_env}/lib/a.gain-2.zarr")
    m = mix_stores([a, first], None)
    assert m.out == f"s3://{s3_env}/lib/a+a.gain.mix.zarr"
    z = LatentStore.open(m.out).read_track("y").astype(np.float32)
    want = 1.5 * LatentStore.open(a).read_track("y").astype(np.float32)
    assert np.abs(z - want).max() < 2e-3


def test_a_killed_op_leaves_nothing_taken_for_a_store(s3_server, s3_env) -> None:  # noqa: F811
    """An op output is committed last: before that its root says 'incomplete'; a re-run replaces it."""
    from lincae_core.errors import StoreFormatError
    from lincae_core.ops import gain_store
    from lincae_core.store.synthetic import synthetic_store

    a, out = f"s3://{s3_env}/a.zarr", f"s3://{s3_env}/b.zarr"
    synthetic_store(a, [("x", 300)], chunk_frames=64)
    s = LatentStore.create(
        out,
        model_id="synthetic",
        model_config={"name": "synthetic"},
        geometry=LatentStore.open(a).geometry,
        channels=1,
        commit=False,
    )  # what a killed op leaves: latents and table, the root not committed
    s.plan([("x", 300, 300 * 256, 16000, 1)])
    with pytest.raises(StoreFormatError, match="incomplete lincae store"):
        LatentStore.open(out)
    r = gain_store(a, out, 2.0)  # no --overwrite needed: what a killed run left is not an output
    assert LatentStore.open(r.out).n_tracks == 1


def test_errors_name_the_url_and_what_to_do(s3_server, s3_env, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, **s3_server.env()}
    missing_key = lincae("ls", f"s3://{s3_env}/nope.zarr", env=env, code=1).stderr.strip().splitlines()
    assert len(missing_key) == 1, missing_key
    assert f"s3://{s3_env}/nope.zarr" in missing_key[0]
    no_bucket = lincae("ls", "s3://no-such-bucket-xyz/a.zarr", env=env, code=1).stderr.strip().splitlines()
    assert len(no_bucket) == 1, no_bucket
    assert "s3://no-such-bucket-xyz/a.zarr" in no_bucket[0]
    assert "bucket" in no_bucket[0]
    assert "does not exist" in no_bucket[0]
    wrong = {
        **env,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "LINCAE_STORAGE_OPTIONS": json.dumps(
            {"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
        ),
    }
    lines = lincae("ls", f"s3://{s3_env}/a.zarr", env=wrong, code=1).stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot reach" in lines[0]
    assert "AWS_ENDPOINT_URL" in lines[0]
    bad_opts = lincae("ls", f"s3://{s3_env}/a.zarr", "--storage-options", "{nope", env=env, code=2).stderr
    assert "--storage-options" in bad_opts
    assert "JSON object" in bad_opts
    # a URL is never a local folder
    assert not (tmp_path / "s3:").exists()


def bucket_digest(fs, prefix: str) -> dict[str, str]:  # noqa: ANN001
    """SHA-256 of every object of a bucket store but its root attributes (ids and times differ)."""
    import hashlib

    return {
        k[len(prefix) :]: hashlib.sha256(fs.cat(k)).hexdigest()
        for k in sorted(fs.find(prefix))
        if not k.endswith(f"{prefix}/zarr.json")
    }


@pytest.mark.slow
def test_an_op_on_bucket_stores_on_a_two_worker_local_cluster(s3_server, s3_env) -> None:  # noqa: F811
    """Workers open the URLs themselves (from the environment they inherit): byte-identical output."""
    distributed = pytest.importorskip("distributed", reason="pip install 'lincae[dask]'")
    import s3fs

    from lincae_core import ops
    from lincae_core.ops import OpOptions
    from lincae_core.store.synthetic import synthetic_store

    tracks = [(f"t{i:03d}", 5 + (i * 37) % 90) for i in range(40)]
    a, b = f"s3://{s3_env}/A.zarr", f"s3://{s3_env}/B.zarr"
    synthetic_store(a, tracks, seed=1, chunk_frames=64)
    synthetic_store(b, tracks, seed=2, chunk_frames=64)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        ops.mix_stores(
            [a, b],
            f"s3://{s3_env}/m-dask.zarr",
            [0.5, 2.0],
            options=OpOptions(max_block_frames=128, scheduler=c.scheduler_address),
        )
        assert len(c.workers) == 2
    ops.mix_stores([a, b], f"s3://{s3_env}/m-1.zarr", [0.5, 2.0], options=OpOptions(max_block_frames=128))
    fs = s3fs.S3FileSystem()
    one, dask = bucket_digest(fs, f"{s3_env}/m-1.zarr"), bucket_digest(fs, f"{s3_env}/m-dask.zarr")
    assert one == dask
    assert any(k.startswith("/latents/c") for k in one)


@pytest.mark.slow
def test_two_shard_processes_encoding_into_one_bucket_store_at_once(
    s3_server,  # noqa: F811
    s3_env,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Started together, two --shard i/2 processes race to plan (one conditional PUT commits) and
    write disjoint objects: the store equals a one-process encode."""
    import s3fs

    env = {**os.environ, **s3_server.env()}
    lib = make_library(tmp_path / "library", n=6)
    out = f"s3://{s3_env}/x.zarr"
    procs = [
        subprocess.Popen(
            [*LINCAE.split(), "encode", str(lib), out, "--shard", f"{i}/2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    planned = [
        json.loads(line)
        for line in lincae("ls", out, "--json", "--status", "all", env=env).stdout.splitlines()
    ]
    assert [r["status"] for r in planned] == ["done"] * 6
    lincae("encode", str(lib), str(tmp_path / "one.zarr"), env=env)
    a, b = LatentStore.open(out), LatentStore.open(tmp_path / "one.zarr")
    keys = a.keys()
    assert keys == b.keys()
    for k in keys:
        assert np.array_equal(a.read_track(k), b.read_track(k)), k
    fs = s3fs.S3FileSystem()
    ledgers = [k for k in fs.find(f"{s3_env}/x.zarr") if "/ledger/" in k]
    assert ledgers == []  # nothing failed


def test_training_loaders_read_bucket_stores_in_worker_processes(s3_server, s3_env) -> None:  # noqa: F811
    """LatentWindows over a bucket store: the same windows as over a local copy, two DataLoader
    workers opening the URL themselves."""
    torch = pytest.importorskip("torch")
    from lincae_core.data import LatentWindows
    from lincae_core.store.synthetic import synthetic_store

    tracks = [("x", 90), ("y", 40), ("z", 130)]
    synthetic_store(f"s3://{s3_env}/w.zarr", tracks, seed=3, chunk_frames=32)
    local = synthetic_store(f"memory://{s3_env}/w.zarr", tracks, seed=3, chunk_frames=32)
    assert LatentStore.open(local.path).read_track("y").shape == (40, 1, 64)

    def items(url: str, workers: int) -> dict[int, tuple[str, object]]:
        ds = LatentWindows([url], window_frames=16, length=12, seed=5)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers)
        out = {}
        for b in loader:  # workers split an epoch's items: match them by index
            for j, i in enumerate(b["index"].tolist()):
                out[i] = (b["key"][j], b["latents"][j])
        return out

    remote, here = items(f"s3://{s3_env}/w.zarr", 2), items(str(local.path), 0)
    assert sorted(remote) == sorted(here) == list(range(12))
    for i, (key, z) in here.items():
        assert remote[i][0] == key
        assert torch.equal(remote[i][1], z)


def test_file_and_memory_urls(tmp_path: Path) -> None:
    """file:// is a local path; memory:// (fsspec's, one process) is a bucket-like store."""
    from lincae_core.location import RemotePath, as_location
    from lincae_core.ops import gain_store
    from lincae_core.store.synthetic import synthetic_store

    assert as_location(f"file://{tmp_path}/a.zarr") == tmp_path / "a.zarr"
    assert isinstance(as_location("memory://x/a.zarr"), RemotePath)
    synthetic_store(f"file://{tmp_path}/a.zarr", [("x", 50)], chunk_frames=16)
    assert (tmp_path / "a.zarr" / "zarr.json").is_file()
    synthetic_store("memory://t/a.zarr", [("x", 50)], chunk_frames=16)
    r = gain_store("memory://t/a.zarr", "memory://t/g.zarr", 0.25)
    got = LatentStore.open(r.out).read_track("x").astype(np.float32)
    want = 0.25 * LatentStore.open("memory://t/a.zarr").read_track("x").astype(np.float32)
    assert np.abs(got - want).max() < 1e-3


def test_an_encode_killed_while_uploading_its_plan_is_planned_again(
    s3_server,  # noqa: F811
    s3_env,  # noqa: F811
    tmp_path: Path,
) -> None:
    """What a kill during the plan's upload leaves (its first object, the table's key array, and
    some others, no root) is a plan in progress: the same command plans again and completes."""
    import s3fs

    env = {**os.environ, **s3_server.env()}
    lib = make_library(tmp_path / "library")
    staged = tmp_path / "staged.zarr"
    lincae("encode", str(lib), str(staged), "--plan-only", env=env)
    fs = s3fs.S3FileSystem()
    for rel in ("tracks/key/zarr.json", "latents/zarr.json"):
        fs.put_file(str(staged / rel), f"{s3_env}/x.zarr/{rel}")
    err = lincae("ls", f"s3://{s3_env}/x.zarr", env=env, code=1).stderr
    assert "holds objects but no store root" in err
    lincae("encode", str(lib), f"s3://{s3_env}/x.zarr", env=env)
    lincae("encode", str(lib), str(tmp_path / "ref.zarr"), env=env)
    same_store(f"s3://{s3_env}/x.zarr", str(tmp_path / "ref.zarr"))


def test_refused_credentials_give_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that checks credentials (moto with IAM authentication on) and keys it does not
    know: one line naming the URL and the variables to check, exit 1."""
    from _s3 import _start

    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # moto: authenticate every request
    server = _start(tmp_path / "auth.log")
    try:
        env = {
            **os.environ,
            **server.env(),
            "AWS_ACCESS_KEY_ID": "AKIANOBODY",
            "AWS_SECRET_ACCESS_KEY": "wrong",
        }
        lines = lincae("ls", "s3://some-bucket/a.zarr", env=env, code=1).stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "s3://some-bucket/a.zarr" in lines[0]
        assert "AWS_ACCESS_KEY_ID" in lines[0]
        assert "Traceback" not in lines[0]
    finally:
        server.stop()
