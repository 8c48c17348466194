"""lincae export: WebDataset shards of latent windows (layout, read-back, byte-identical shards
whatever the parallelism, normalization, per-track metadata, failures) and its command."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from _latent_stores import make_store
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import stats_store
from lincae_core.errors import ConfigError, LincaeError
from lincae_core.ops.export import (
    RESERVED_FIELDS,
    export_shards,
    sample_key,
    tar_header,
    window_counts,
    window_starts,
)
from lincae_core.ops.export import writer as export_writer


def test_window_starts_and_keys() -> None:
    assert window_starts(10, 4, 4) == [0, 4, 8]
    assert window_starts(8, 4, 4) == [0, 4]
    assert window_starts(3, 4, 2) == [0]
    assert window_starts(0, 4, 2) == []
    assert sample_key("a/b.c d", 3) == "a/b%2Ec%20d/00000003"
    assert "." not in sample_key("../../etc", 0)
    assert sample_key("/x", 0).startswith("%2F")


def test_export_shards_read_back(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "s", [("song.one", 30), ("two", 7)], dtype="float16")
    pattern = str(tmp_path / "shards" / "%06d.tar")
    result = export_shards(s, pattern, window_s=0.2, hop_s=0.16, maxcount=3)
    w = result.window_frames
    assert (w, result.hop_frames, result.samples) == (13, 10, 4)
    assert len(result.shards) == 2
    samples = list(wds.WebDataset(result.shards, shardshuffle=False, empty_check=False))
    assert [x["__key__"] for x in samples] == [
        "song%2Eone/00000000",
        "song%2Eone/00000010",
        "song%2Eone/00000020",
        "two/00000000",
    ]
    for x in samples:
        z = np.load(io.BytesIO(x["latent.npy"]), allow_pickle=False)
        meta = json.loads(x["json"])
        assert z.shape == (2 * 8, w)  # [C*D, T]
        assert z.dtype == np.float16
        start, n = meta["start_frame"], meta["frames"]
        assert meta["padding_mask"] == [1] * n + [0] * (w - n)
        ref = zs[meta["key"]][start : start + n].reshape(n, -1).T
        np.testing.assert_array_equal(z[:, :n], ref)
        assert not z[:, n:].any()
        assert meta["seconds_start"] == pytest.approx(start / 62.5)
        assert meta["model_id"] == s.model_id
    with pytest.raises(LincaeError, match="already exists"):
        export_shards(s, pattern, window_s=0.2)
    with pytest.raises(ConfigError, match="%-field"):
        export_shards(s, str(tmp_path / "x.tar"), window_s=0.2)


def test_export_failure_leaves_no_partial_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s, _ = make_store(tmp_path / "s", [("a", 30), ("b", 30)])
    calls = {"n": 0}
    real = export_writer.tar_header

    def failing(name: str, size: int) -> bytes:
        calls["n"] += 1
        if calls["n"] == 7:  # the 4th window: shard 0 is complete, shard 1 half-written
            raise OSError("disk full")
        return real(name, size)

    monkeypatch.setattr(export_writer, "tar_header", failing)
    with pytest.raises(OSError, match="disk full"):
        export_shards(s, str(tmp_path / "sh" / "%03d.tar"), window_s=0.2, maxcount=2)
    assert sorted(p.name for p in (tmp_path / "sh").iterdir()) == ["000.tar"]


def _samples(tar: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with tarfile.open(tar) as tf:
        for m in tf.getmembers():
            base, ext = m.name.split(".", 1)[0], m.name.rsplit(".", 1)[-1]
            data = tf.extractfile(m).read()  # type: ignore[union-attr]
            out.setdefault(base, {})[ext] = np.load(io.BytesIO(data)) if ext == "npy" else json.loads(data)
    return out


def test_export_normalize_applies_and_records_the_stats(tmp_path: Path) -> None:
    _, zs = make_store(tmp_path / "A", [("x", 30)], seed=4, dtype="float32", scale=0.2)
    pattern = str(tmp_path / "sh" / "%04d.tar")
    r = CliRunner().invoke(cli, ["export", str(tmp_path / "A"), pattern, "--window", "0.64", "--normalize"])
    assert r.exit_code == 1
    assert "lincae stats" in r.stderr  # no stats yet: a clear refusal
    stats_store(tmp_path / "A")
    r = CliRunner().invoke(
        cli, ["export", str(tmp_path / "A"), pattern, "--window", "0.64", "--normalize", "--json"]
    )
    assert r.exit_code == 0, r.output
    samples = _samples(Path(json.loads(r.stdout)["shards"][0]))
    first = samples["x/00000000"]
    norm = first["json"]["normalization"]
    mean, std = np.asarray(norm["mean"]), np.asarray(norm["std"])
    z = zs["x"][: first["json"]["frames"]].astype(np.float64)
    want = ((z - mean) / std).reshape(z.shape[0], -1).T  # [C*D, T]
    np.testing.assert_allclose(first["npy"][:, : z.shape[0]], want, rtol=1e-5, atol=1e-6)
    last = samples[max(samples)]
    pad = np.asarray(last["json"]["padding_mask"]) == 0
    assert not last["npy"][:, pad].any()  # padding stays zero


# ------------------------------------------------------------------ export at scale (issue 13)
MANY = [(f"t{i:03d}", (i * 37) % 61) for i in range(60)]  # 0..60 frames, some empty


def _sha(paths: list[str]) -> list[str]:
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def _wds(shards: list[str]) -> list[dict]:
    return list(wds.WebDataset(shards, shardshuffle=False, empty_check=False))


def test_window_counts_match_window_starts() -> None:
    frames = np.arange(0, 80)
    for window, hop in ((1, 1), (4, 4), (13, 10), (16, 3), (5, 9)):
        want = [len(window_starts(int(f), window, hop)) for f in frames]
        assert window_counts(frames, window, hop).tolist() == want


def test_export_jobs_2_is_byte_identical_with_exact_shard_boundaries(tmp_path: Path) -> None:
    s, zs = make_store(tmp_path / "A", MANY, seed=5, chunk_frames=16)
    stats_store(s.path)
    keys = [k for k, _ in MANY][::-3]  # --keys-from order, not row order
    for name, kw in (("rows", {}), ("keys", {"keys": keys, "normalize": True, "dtype": "float32"})):
        one = export_shards(
            s.path, str(tmp_path / f"{name}1" / "%03d.tar"), 0.2, 0.08, maxcount=7, jobs=1, **kw
        ).to_dict()
        two = export_shards(
            s.path, str(tmp_path / f"{name}2" / "%03d.tar"), 0.2, 0.08, maxcount=7, jobs=2, **kw
        ).to_dict()
        assert [Path(p).name for p in one["shards"]] == [Path(p).name for p in two["shards"]]
        assert _sha(one["shards"]) == _sha(two["shards"]), name
        order = kw.get("keys", [k for k, f in MANY])
        frames = dict(MANY)
        want = [sample_key(k, st) for k in order for st in window_starts(frames[k], 13, 5)]
        assert one["samples"] == len(want) > 7 * 5
        assert len(one["shards"]) == -(-len(want) // 7)
        per_shard = [[x["__key__"] for x in _wds([p])] for p in one["shards"]]
        assert [len(k) for k in per_shard[:-1]] == [7] * (len(per_shard) - 1)
        assert [k for ks in per_shard for k in ks] == want  # shard i = windows [7i, 7i + 7)
    for x in _wds(one["shards"])[:20]:  # normalized float32 windows of the keys run
        meta = json.loads(x["json"])
        z = np.load(io.BytesIO(x["latent.npy"]))
        n, st = meta["frames"], meta["start_frame"]
        mean, std = np.asarray(meta["normalization"]["mean"]), np.asarray(meta["normalization"]["std"])
        ref = (zs[meta["key"]][st : st + n].astype(np.float64) - mean) / std
        assert z.dtype == np.float32
        np.testing.assert_array_equal(z[:, :n], ref.reshape(n, -1).T.astype(np.float32))
        assert not z[:, n:].any()


def test_export_json_records_the_downsampling_ratio_exactly(tmp_path: Path) -> None:
    geo = {"sample_rate": 16000, "samples_per_frame": 2048, "latent_dim": 4}
    s, _ = make_store(tmp_path / "A", [("a.b", 20), ("ü~", 5)], geometry=geo, channels=1)
    out = export_shards(s, str(tmp_path / "sh" / "%02d.tar"), 1.0, 0.5)
    samples = _wds(out.shards)
    assert out.samples == len(samples) == 5  # 8-frame windows every 4 frames: 3 + 2
    for x in samples:
        meta = json.loads(x["json"])
        assert meta["downsampling_ratio"] == meta["samples_per_frame"] == 2048
        assert meta["seconds_start"] * meta["sample_rate"] == meta["start_frame"] * 2048
        t = s.track(meta["key"])
        want = {
            "key": t.key,
            "start_frame": meta["start_frame"],
            "frames": meta["frames"],
            "window_frames": 8,
            "seconds_start": meta["start_frame"] / s.geometry.frame_rate,
            "seconds_total": t.samples / 16000,
            "padding_mask": meta["padding_mask"],
            "model_id": s.model_id,
            "store_id": s.store_id,
            "sample_rate": 16000,
            "samples_per_frame": 2048,
            "downsampling_ratio": 2048,
            "latent_dim": 4,
            "channels": 1,
            "layout": "[C*D, T]",
        }
        assert x["json"] == json.dumps(want).encode()  # the prebuilt JSON is json.dumps' own


def test_tar_members_are_deterministic_and_headers_match_tarfile() -> None:
    for name in ("a/00000000.json", "x" * 100, "x" * 101, "é/1.json", "song%2Eone/00000120.latent.npy"):
        for size in (0, 1, 511, 384, 10**9):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, 0, 0o444, "bigdata", "bigdata"
            assert tar_header(name, size) == ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def test_export_tar_attributes(tmp_path: Path) -> None:
    s, _ = make_store(tmp_path / "A", [("x", 30)])
    out = export_shards(s, str(tmp_path / "sh" / "%02d.tar"), 0.2)
    with tarfile.open(out.shards[0]) as tf:
        members = tf.getmembers()
    assert [m.name for m in members[:2]] == ["x/00000000.json", "x/00000000.latent.npy"]
    assert {(m.mtime, m.mode, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (0, 0o444, 0, 0, "bigdata", "bigdata")
    }
    assert Path(out.shards[0]).stat().st_size % 10240 == 0  # whole tar records, as tarfile


def test_export_metadata_is_merged_per_track(tmp_path: Path) -> None:
    make_store(tmp_path / "A", [("x", 30), ("y.z", 20), ("w", 9)])
    md = tmp_path / "meta.jsonl"
    md.write_text(
        '{"key": "x", "prompt": "a calm piano", "tags": ["piano"]}\n\n'
        '{"key": "y.z", "prompt": "drums \\u00e9", "bpm": 120}\n{"key": "gone", "prompt": "?"}\n'
    )
    pattern = str(tmp_path / "sh" / "%02d.tar")
    r = CliRunner().invoke(
        cli, ["export", str(tmp_path / "A"), pattern, "--window", "0.2", "--metadata", str(md), "--json"]
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["metadata"] == {"tracks": 2, "tracks_without": 1, "unused": 1}
    assert "1 of 3 tracks have no entry in" in r.stderr
    seen = set()
    for x in _wds(summary["shards"]):
        meta = json.loads(x["json"])
        extra = {k: v for k, v in meta.items() if k not in RESERVED_FIELDS}
        want = {
            "x": {"prompt": "a calm piano", "tags": ["piano"]},
            "y.z": {"prompt": "drums é", "bpm": 120},
            "w": {},
        }[meta["key"]]
        assert extra == want
        seen.add(meta["key"])
    assert seen == {"x", "y.z", "w"}


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('{"key": "x"}\n{"key": "y", "prompt": \n', 2, "not valid JSON"),
        ('{"key": "x"}\n["y"]\n', 2, "expected a JSON object"),
        ('{"prompt": "p"}\n', 1, 'string "key" field'),
        ('{"key": "x"}\n\n{"key": "x", "prompt": "p"}\n', 3, "duplicate key 'x' (first on line 1)"),
        ('{"key": "x", "seconds_total": 3}\n', 1, "field 'seconds_total' is reserved"),
    ],
)
def test_export_metadata_errors_name_file_and_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    make_store(tmp_path / "A", [("x", 30), ("y", 20)])
    md = tmp_path / "meta.jsonl"
    md.write_text(text)
    r = CliRunner().invoke(
        cli,
        [
            "export",
            str(tmp_path / "A"),
            str(tmp_path / "sh" / "%02d.tar"),
            "--window",
            "0.2",
            "--metadata",
            str(md),
        ],
    )
    assert r.exit_code == 2  # the file a command-line option named: a value error
    err = r.stderr.strip()
    assert "\n" not in err
    assert f"{md}:{line}: " in err
    assert what in err
    assert not (tmp_path / "sh" / "00.tar").exists()


def test_export_failure_in_one_unit_leaves_only_complete_shards(tmp_path: Path) -> None:
    s, _ = make_store(tmp_path / "A", MANY, seed=5, chunk_frames=16)
    (tmp_path / "sh").mkdir()
    (tmp_path / "sh" / "003.tar.partial").mkdir()  # the unit writing shard 3 cannot open it
    with pytest.raises(IsADirectoryError):
        export_shards(s, str(tmp_path / "sh" / "%03d.tar"), 0.2, 0.08, maxcount=7, jobs=2)
    left = sorted(p.name for p in (tmp_path / "sh").iterdir())
    assert [n for n in left if n.endswith(".partial")] == ["003.tar.partial"]  # ours, a directory
    assert "003.tar" not in left
    for name in (n for n in left if n.endswith(".tar")):  # what completed is a whole 7-window shard
        assert len(_wds([str(tmp_path / "sh" / name)])) == 7


def test_export_cli(tmp_path: Path) -> None:
    make_store(tmp_path / "A", [("x", 30), ("y", 50), ("z", 7)], seed=1, failed=("z",))
    a = str(tmp_path / "A")
    pattern = str(tmp_path / "sh" / "%04d.tar")
    r = CliRunner().invoke(
        cli, ["export", a, pattern, "--window", "0.4", "--hop", "0.2", "--maxcount", "2", "--json"]
    )
    assert r.exit_code == 3, r.output  # partial, as the ops: the failed track z is left out
    assert f"export: left out 0 planned and 1 failed tracks of {a}" in r.stderr
    summary = json.loads(r.stdout)
    assert summary["window_frames"] == 25
    assert summary["samples"] == 5
    assert summary["left_out"] == {a: {"planned": 0, "failed": 1}}
    assert summary["padding"] == pytest.approx(1 - (25 + 17 + 25 + 25 + 24) / (5 * 25), abs=1e-4)
    assert all(Path(p).is_file() for p in summary["shards"])
    keys = tmp_path / "keys.txt"
    keys.write_text("x\ny\n")  # the done tracks named: whole, exit 0
    r = CliRunner().invoke(
        cli, ["export", a, pattern, "--window", "0.4", "--overwrite", "--keys-from", str(keys)]
    )
    assert r.exit_code == 0, r.output
    assert "windows" in r.stdout
    # windows much longer than the tracks: mostly padding, said so, exit 3
    r = CliRunner().invoke(
        cli, ["export", a, pattern, "--window", "5", "--overwrite", "--keys-from", str(keys)]
    )
    assert r.exit_code == 3, r.output
    assert "of the exported frames are padding" in r.stderr
    r = CliRunner().invoke(cli, ["export", a, str(tmp_path / "plain.tar"), "--window", "1"])
    assert r.exit_code == 2  # the library's refusal of a command-line value: one line, a usage error
    err = r.stderr.strip()
    assert "\n" not in err
    assert "%" in err


@pytest.mark.slow
def test_export_on_a_local_cluster_matches_one_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a dask.distributed LocalCluster of two worker processes (and through the CLI's
    --scheduler env), the shards are those of --jobs 1, byte for byte."""
    distributed = pytest.importorskip("distributed", reason="pip install 'lincae[dask]'")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        tracks = [(f"t{i:03d}", (i * 37) % 61) for i in range(80)]
        make_store(tmp_path / "A", tracks, seed=3, chunk_frames=16)
        one = export_shards(tmp_path / "A", str(tmp_path / "one" / "%03d.tar"), 0.2, 0.08, maxcount=5, jobs=1)
        dask = export_shards(
            tmp_path / "A",
            str(tmp_path / "dask" / "%03d.tar"),
            0.2,
            0.08,
            maxcount=5,
            scheduler=cluster.scheduler_address,
        )
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "one").iterdir()}
        assert len(files) == len(one.shards) > 10
        assert files == {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "dask").iterdir()
        }
        assert dask.samples == one.samples
        monkeypatch.setenv("LINCAE_SCHEDULER", cluster.scheduler_address)  # the CLI's --scheduler env
        r = CliRunner().invoke(
            cli,
            [
                "export",
                str(tmp_path / "A"),
                str(tmp_path / "cli" / "%03d.tar"),
                "--window",
                "0.2",
                "--hop",
                "0.08",
                "--maxcount",
                "5",
            ],
        )
        assert r.exit_code == 0, r.output
        assert files == {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "cli").iterdir()
        }


# ------------------------------------------- stable-audio-tools reads the export (issue 24)
def _store_window(zs: dict, meta: dict, a: int, b: int) -> np.ndarray:
    """Frames [a, b) of a sample's window as [C*D, b - a] (zeros past the track's end)."""
    z = zs[meta["key"]].astype(np.float32)
    st = meta["start_frame"]
    out = np.zeros((b - a, *z.shape[1:]), np.float32)
    real = z[st + a : min(st + b, z.shape[0])]
    out[: real.shape[0]] = real
    return out.reshape(b - a, -1).T


def test_stable_audio_tools_reads_the_sat_dir_export(tmp_path: Path) -> None:
    """stable-audio-tools' own PreEncodedDataset (torchaudio stand-in: tests/_sat_torchaudio.py)
    reads a sat-dir export with random crops of latent_crop_length, padded and unpadded."""
    from _sat_torchaudio import sat_dataset

    s, zs = make_store(tmp_path / "A", [("song.one", 30), ("two", 7), ("a/b", 21)], dtype="float32")
    s.write_origin(np.full((3, 2, 8), 0.5, np.float32))
    md = {"two": {"prompt": "drums"}}
    with sat_dataset() as sat:
        for pad in (True, False):
            out = tmp_path / f"dir-{pad}"
            r = CliRunner().invoke(
                cli,
                ["export", str(tmp_path / "A"), str(out), "--window", "0.2", "--format", "sat-dir", "--json"]
                + ([] if pad else ["--no-pad"]),
            )
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["shards"] == [str(out)]
            export_shards(s, str(tmp_path / f"m-{pad}"), 0.2, format="sat-dir", pad=pad, metadata=md)
            files = (out / "filelist.txt").read_text().split()
            assert files[:3] == [
                "song%2Eone/00000000.npy",
                "song%2Eone/00000013.npy",
                "song%2Eone/00000026.npy",
            ]
            assert len(files) == 3 + 1 + 2
            details = json.loads((out / "details.json").read_text())
            assert details["downsampling_ratio"] == 256
            assert details["model_config"] == s.model_config
            assert details["model_card"] == s.model_card
            silence = np.load(out / "silence.npy")
            assert silence.shape == (16, 3)
            assert (silence == 0.5).all()
            ds = sat.PreEncodedDataset(
                [sat.LocalDatasetConfig("lincae", str(out))], latent_crop_length=5, random_crop=True
            )
            assert len(ds) == 6
            for i in range(len(ds)):
                latents, info = ds[i]
                n, crop = info["frames"], info["latent_crop_start"]
                assert info["latent_filename"] == str(out / files[i])
                assert latents.shape == (16, min(5, 13 if pad else n))
                assert 0 <= crop <= max(0, n - 1 - 5)
                want = _store_window(zs, info, crop, crop + latents.shape[1])
                np.testing.assert_array_equal(latents.numpy(), want)
                mask = info["padding_mask"][0].tolist()
                assert mask == [1 if crop + t < n else 0 for t in range(latents.shape[1])]
                assert info["seconds_total"] == s.track(info["key"]).samples / 16000
            # metadata reaches the items (the prompt of stable-audio-tools' conditioners)
            meta_ds = sat.PreEncodedDataset([sat.LocalDatasetConfig("m", str(tmp_path / f"m-{pad}"))])
            prompts = {ds_info["key"]: ds_info.get("prompt") for _, ds_info in (meta_ds[i] for i in range(6))}
            assert prompts == {"song.one": None, "two": "drums", "a/b": None}


def _first(v: object) -> object:
    x = v[0]  # type: ignore[index]
    return x.item() if hasattr(x, "ndim") and x.ndim == 0 else x


def test_stable_audio_tools_reads_the_sat_wds_export(tmp_path: Path) -> None:
    """Its pre-encoded WebDataset loader (pre_encoded=True reads sample["npy"]) reads sat-wds
    shards, cropping latent_crop_length frames; today's default members are not "npy"."""
    from _sat_torchaudio import sat_dataset

    s, zs = make_store(tmp_path / "A", [("x.y", 40), ("z", 26)], dtype="float32")
    out = export_shards(s, str(tmp_path / "sh" / "%02d.tar"), 0.2, maxcount=2, format="sat-wds")
    with tarfile.open(out.shards[0]) as tf:
        assert tf.getnames()[:2] == ["x%2Ey/00000000.json", "x%2Ey/00000000.npy"]
    assert (tmp_path / "sh" / "details.json").exists()
    assert not (tmp_path / "sh" / "silence.npy").exists()  # the store records no Enc(0)
    config = {
        "dataset_type": "wds",
        "datasets": [{"id": "lincae", "path": str(tmp_path / "sh")}],
        "pre_encoded": True,
        "latent_crop_length": 6,
        "random_crop": True,
        "resampled_shards": False,
    }
    with sat_dataset() as sat:  # its own config entry point, as its train.py calls it
        loader = sat.create_dataloader_from_config(
            config, batch_size=1, sample_size=None, sample_rate=16000, audio_channels=1, num_workers=1
        )
        batches = list(loader)
    # its WebLoader keeps torch's default batch_size=1 over its own batches: one more batch level
    got = [(lat[0, 0], {k: _first(v) for k, v in info[0].items()}) for lat, info in batches]
    assert sorted((m["key"], m["start_frame"]) for _, m in got) == [
        ("x.y", 0),
        ("x.y", 13),
        ("x.y", 26),
        ("x.y", 39),
        ("z", 0),
        ("z", 13),
    ]
    for lat, meta in got:
        assert lat.shape == (16, 6)
        full = _store_window(zs, meta, 0, 13)
        offsets = [a for a in range(8) if np.array_equal(full[:, a : a + 6], lat.numpy())]
        assert offsets, "the crop is a slice of the window"
        a = offsets[0]
        assert meta["padding_mask"].tolist() == [1 if a + t < meta["frames"] else 0 for t in range(6)]
