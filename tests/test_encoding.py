"""``lincae encode``: latents equal to ``inference.encode``, the failure ledger, exit codes, resume after
a kill (byte-identical), and two shard processes at once (identical to one process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from conftest import music

from lincae_cli.main import cli
from lincae_core import inference
from lincae_core.audio import load_audio, resampled_length
from lincae_core.config import InferenceConfig
from lincae_core.discovery import discover
from lincae_core.encoding.job import encode_files
from lincae_core.encoding.schedule import block_schedule
from lincae_core.encoding.settings import EncodeProgress, EncodeSettings
from lincae_core.errors import StoreMismatchError
from lincae_core.models import load_model
from lincae_core.nn.transforms import padded_length
from lincae_core.store import LatentStore

ROOT = Path(__file__).resolve().parents[1]
INFERENCE = InferenceConfig(window_s=1.0, overlap_s=0.3, batch_size=3)
CLI_WINDOW = ["--window", "1", "--overlap", "0.3"]
GOOD = {
    "a": ("a.wav", 44100, 1, 3.0),
    "sub/b": ("sub/b.flac", 22050, 2, 2.0),
    "c": ("c.wav", 16000, 1, 5.0),
    "e": ("e.flac", 48000, 1, 1.2),
}
PLAN_FAILURES = {
    "x": "empty",
    "y": "not a readable",
    "t": "truncated",
    "z": "not a readable",
    "d": "directory",
}


def _write_good(root: Path) -> None:
    for i, (rel, rate, ch, sec) in enumerate(GOOD.values()):
        x = music(rate, sec, seed=i)
        data = x if ch == 1 else np.stack([x, music(rate, sec, seed=10 + i)], axis=1)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, data, rate)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good files (44.1/22.05/16/48 kHz, mono and stereo, wav and flac) and bad ones."""
    root = tmp_path_factory.mktemp("lib")
    _write_good(root)
    (root / "x.wav").write_bytes(b"")  # empty
    (root / "y.flac").write_bytes(np.random.default_rng(0).bytes(4096))  # garbage
    (root / "z.mp3").write_text("this is not audio\n" * 20)  # mislabeled text
    (root / "d.wav").mkdir()  # a directory named like audio
    sf.write(root / "full.wav", music(44100, 2.0, seed=7), 44100)
    data = (root / "full.wav").read_bytes()
    (root / "t.wav").write_bytes(data[: len(data) // 2])  # truncated WAV: header says 2 s
    (root / "full.wav").unlink()
    sf.write(root / "full.flac", music(16000, 3.0, seed=8), 16000)
    data = (root / "full.flac").read_bytes()
    (root / "tf.flac").write_bytes(data[: len(data) // 2])  # truncated FLAC: fails when decoded
    (root / "full.flac").unlink()
    return root


@pytest.fixture(scope="module")
def model(micro_ckpt: str) -> Any:
    return load_model(micro_ckpt)


def _snapshot(path: Path, per_key: bool = False) -> dict[str, Any]:
    """Latents and track table of a store (per key, without offsets, for other layouts)."""
    store = LatentStore.open(path)
    table = store.table()
    snap: dict[str, Any] = {c: v.tolist() for c, v in table.items() if not (per_key and c == "offset")}
    if per_key:
        keys: list[str] = store.keys()
        snap["latents"] = {k: store.read_track(k).tobytes() for k in keys}
    else:
        snap["latents"] = store.latents.read(0, store.total_frames).tobytes()
    snap["ledger"] = sorted((r["key"], r["index"], r["reason"]) for r in store.ledger())
    return snap


def test_encode_matches_api_and_records_failures(library: Path, model: Any, tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    summary = encode_files(
        discover(library),
        out,
        model,
        INFERENCE,
        EncodeSettings(dtype="float32", channels_last=False),
        args={"library": str(library)},
    )
    assert (summary.encoded, summary.failed, summary.plan_failures) == (4, 1, 5)
    assert summary.partial
    assert not summary.nothing_to_do
    store = LatentStore.open(out)
    assert sorted(store.keys()) == sorted([*GOOD, "tf"])
    for key, (rel, rate, ch, sec) in GOOD.items():
        t = store.track(key)
        samples = resampled_length(int(rate * sec), rate, 16000)
        assert (t.samples, t.source_rate, t.channels, t.status) == (samples, rate, ch, 1)
        assert t.frames == padded_length(samples, model.config)[0]
        ref = inference.encode(model, load_audio(library / rel, 16000), INFERENCE).numpy()  # [1, D, Z]
        # other batch neighbours than inference.encode's: equal up to kernel rounding (1e-7)
        np.testing.assert_allclose(store.read_track(key).transpose(1, 2, 0), ref, atol=1e-5, rtol=0)
    assert store.track("tf").status == 2
    reasons = {r["key"]: r["reason"] for r in store.ledger()}
    assert set(reasons) == {*PLAN_FAILURES, "tf"}
    for key, words in PLAN_FAILURES.items():
        assert words in reasons[key], reasons[key]
    assert "tf.flac" in reasons["tf"]
    a = store.attrs
    assert a["model"]["id"] == model.model_id
    assert a["model"]["config"] == model.config.to_dict()
    assert a["dtype"] == "float32"
    assert a["channels"] == 1
    assert (a["encoding"]["window_s"], a["encoding"]["overlap_s"]) == (1.0, 0.3)
    assert a["lineage"][0]["op"] == "encode"
    assert a["lineage"][0]["args"]["library"] == str(library)
    # Where the encoder ran is recorded: a CUDA store differs from a CPU one by a few float16 steps.
    assert a["lineage"][0]["args"]["device"] == "cpu"
    assert a["lineage"][0]["args"]["float16_autocast"] is False


def test_single_track_is_bitwise_api_encode(library: Path, model: Any, tmp_path: Path) -> None:
    """Alone in the store, a track's windows batch exactly as in inference.encode: same bits
    (with the library API's contiguous memory format; channels-last is the CPU default)."""
    encode_files(
        discover(library / "a.wav"),
        tmp_path / "one.zarr",
        model,
        INFERENCE,
        EncodeSettings(dtype="float32", channels_last=False),
    )
    ref = inference.encode(model, load_audio(library / "a.wav", 16000), INFERENCE).numpy()
    z = LatentStore.open(tmp_path / "one.zarr").read_track("a")
    np.testing.assert_array_equal(z.transpose(1, 2, 0), ref)


def test_channels_last_default_within_float16_precision(library: Path, model: Any, tmp_path: Path) -> None:
    """On CPU the default is channels-last: latents within float16 storage precision of the library
    API (``inference.encode``), and the model is left as it was."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    encode_files(
        discover(library, files=["a.wav", "c.wav"]),
        tmp_path / "cl.zarr",
        model,
        INFERENCE,
        EncodeSettings(dtype="float32"),
    )
    store = LatentStore.open(tmp_path / "cl.zarr")
    assert store.encoding["channels_last"] is True
    for key, rel in (("a", "a.wav"), ("c", "c.wav")):
        ref = inference.encode(model, load_audio(library / rel, 16000), INFERENCE).numpy()[0]  # [D, Z]
        z = store.read_track(key)[:, 0].T
        assert not np.array_equal(z, ref)  # really another algorithm
        # float16 resolution: relative 2^-11 (rtol 1e-3), and its spacing at the latents' RMS near 0
        atol = float(np.spacing(np.float16(np.sqrt(np.mean(ref**2)))))
        np.testing.assert_allclose(z, ref, rtol=1e-3, atol=atol)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
        assert v.is_contiguous()


def test_stereo_keeps_two_latent_channels(library: Path, model: Any, tmp_path: Path) -> None:
    sources = discover(library, files=["sub/b.flac", "c.wav"])
    summary = encode_files(
        sources,
        tmp_path / "st.zarr",
        model,
        INFERENCE,
        EncodeSettings(channels="stereo", dtype="float32", channels_last=False),
    )
    assert (summary.encoded, summary.partial) == (2, False)
    store = LatentStore.open(tmp_path / "st.zarr")
    z = store.read_track("sub/b")  # [Z, 2, D]
    ref = inference.encode(
        model, load_audio(library / "sub/b.flac", 16000, "stereo")[None], INFERENCE
    ).numpy()
    np.testing.assert_allclose(z.transpose(1, 2, 0), ref[0], atol=1e-5)
    zc = store.read_track("c")
    np.testing.assert_array_equal(zc[:, 0], zc[:, 1])  # a mono source gives two equal channels


def test_schedule_does_not_depend_on_progress() -> None:
    frames = np.array([3, 20, 8, 5, 3, 40, 1])
    full = block_schedule(0, frames, 8, 2, 2, 3, np.ones(7, bool))
    part = block_schedule(0, frames, 8, 2, 2, 3, np.array([0, 0, 1, 0, 0, 0, 0], bool))
    assert full.batches == part.batches
    assert all(full.needed)
    assert all(len(b) <= 3 for b in full.batches)
    assert [r for b, n in zip(part.batches, part.needed, strict=True) if n for r, _, _ in b].count(2) == 2
    for b, length in zip(full.batches, full.lengths, strict=True):  # equal window lengths per batch
        assert {full.windows[r][i][1] - full.windows[r][i][0] for r, i, _ in b} == {length}


class _Crash(Exception):
    pass


def test_interrupted_encodes_resume_identically(library: Path, model: Any, tmp_path: Path) -> None:
    sources = discover(library)
    settings = EncodeSettings(workers=2)
    encode_files(sources, tmp_path / "clean.zarr", model, INFERENCE, settings)

    def crash_at(phase: str, files: int, seconds: float = 0.0) -> Any:
        def progress(p: EncodeProgress) -> None:
            if p.phase == phase and p.files_done >= files and p.seconds_done > seconds:
                raise _Crash

        return progress

    out = tmp_path / "resumed.zarr"
    for point in (crash_at("plan", 3, -1), crash_at("encode", 0), crash_at("encode", 2)):
        with pytest.raises(_Crash):
            encode_files(sources, out, model, INFERENCE, settings, progress=point)
    final = encode_files(sources, out, model, INFERENCE, settings)
    assert final.encoded + final.failed < 5  # the earlier runs had done part of the work
    assert _snapshot(out) == _snapshot(tmp_path / "clean.zarr")
    again = encode_files(sources, out, model, INFERENCE, settings)
    assert again.nothing_to_do
    assert again.encoded == 0


def _run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["encode", *args], catch_exceptions=False)


def test_cli_exit_codes_rerun_and_refusals(library: Path, micro_ckpt: str, tmp_path: Path) -> None:
    out = str(tmp_path / "cli.zarr")
    common = [str(library), out, "-c", micro_ckpt, *CLI_WINDOW]
    first = _run_cli(*common)
    assert first.exit_code == 3, first.output
    assert "encoded 4 tracks" in first.output
    assert "1 failed" in first.output
    again = _run_cli(*common, "--json")
    assert again.exit_code == 3
    assert json.loads(again.stdout)["nothing_to_do"] is True
    other = _run_cli(str(library), out, "-c", micro_ckpt, "--window", "2")
    assert other.exit_code == 1
    assert "another window_frames" in other.output
    good = [f"{rel}\n" for rel, *_ in GOOD.values()]
    args = [
        "encode",
        str(library),
        str(tmp_path / "good.zarr"),
        "-c",
        micro_ckpt,
        "--files-from",
        "-",
        "--dtype",
        "float32",
        *CLI_WINDOW,
    ]
    ok = CliRunner().invoke(cli, [*args, "--chunk-frames", "48"], input="".join(good))
    assert ok.exit_code == 0, ok.output
    good_store = LatentStore.open(tmp_path / "good.zarr")
    assert (good_store.dtype, good_store.chunk_frames) == ("float32", 48)
    assert LatentStore.open(out).dtype == "float16"
    assert LatentStore.open(out).chunk_frames == 16384  # the default
    assert sorted(p.name for p in (tmp_path / "good.zarr" / "latents").iterdir())[0] == "c.0.0.0"
    other = _run_cli(*common, "--chunk-frames", "64")  # a store keeps its layout
    assert other.exit_code == 1
    assert "another chunk_frames (store: 16384, this encode: 64)" in other.output
    replaced = _run_cli(str(library), out, "-c", micro_ckpt, "--window", "2", "--overwrite")
    assert replaced.exit_code == 3
    assert LatentStore.open(out).encoding["window_s"] == 2.0


def test_cli_dry_run_and_usage_errors(library: Path, micro_ckpt: str, tmp_path: Path) -> None:
    out = tmp_path / "dry.zarr"
    dry = _run_cli(str(library), str(out), "-c", micro_ckpt, "--dry-run", "--json")
    assert dry.exit_code == 0
    assert not out.exists()
    plan = json.loads(dry.stdout)
    assert (plan["files"], plan["planned"], plan["failed"]) == (10, 5, 5)
    assert plan["hours"] > 0
    assert plan["store_bytes"] == plan["frames"] * 64 * 2
    for args in (
        ["--shard", "2/2"],
        ["--shard", "x"],
        ["--channels", "quad"],
        ["--overwrite", "--shard", "0/2"],
        ["--ext", ","],
    ):
        bad = _run_cli(str(library), str(out), "-c", micro_ckpt, *args)
        assert bad.exit_code == 2, (args, bad.output)
    assert _run_cli(str(tmp_path / "nope"), str(out)).exit_code == 2
    assert not out.exists()


# ----------------------------------------------------------------------------- processes
@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 short tracks (two windows each): long enough to kill an encode half-way."""
    root = tmp_path_factory.mktemp("big")
    for i in range(16):
        sf.write(root / f"t{i:02d}.wav", music(16000, 1.5 + 0.1 * (i % 3), seed=100 + i), 16000)
    return root


def _cmd(lib: Path, out: Path, ckpt: str, *extra: str) -> list[str]:
    return [str(lib), str(out), "-c", ckpt, *CLI_WINDOW, "--batch-size", "2", "--workers", "1", *extra]


@pytest.fixture(scope="module")
def big_clean(big_library: Path, micro_ckpt: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "clean.zarr"
    assert _run_cli(*_cmd(big_library, out, micro_ckpt)).exit_code == 0
    return out


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "lincae_cli", "encode", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _mtime(p: Path) -> float:
    return p.stat().st_mtime_ns if p.exists() else 0


def test_sigkill_then_rerun_is_byte_identical(
    big_library: Path, big_clean: Path, micro_ckpt: str, tmp_path: Path
) -> None:
    out = tmp_path / "killed.zarr"
    args = _cmd(big_library, out, micro_ckpt)
    proc = _spawn(args)  # killed as soon as it has written latents (no track marked done yet)
    _kill_when(proc, lambda: any((out / "latents").glob("c.*")))
    assert not LatentStore.open(out).is_complete(), "finished before the kill: make the library larger"
    status = out / "tracks" / "status" / "c" / "0"
    planned_at = _mtime(status)
    proc = _spawn(args)  # the same command, killed when it first marks tracks done
    _kill_when(proc, lambda: _mtime(status) != planned_at)
    rerun = _run_cli(*args)
    assert rerun.exit_code == 0, rerun.output
    assert _snapshot(out) == _snapshot(big_clean)
    assert "nothing to do" in _run_cli(*args).output


def test_two_shards_at_once_match_one_process(
    big_library: Path, big_clean: Path, micro_ckpt: str, tmp_path: Path
) -> None:
    out = tmp_path / "sharded.zarr"
    procs = [_spawn(_cmd(big_library, out, micro_ckpt, "--shard", f"{i}/2")) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    store = LatentStore.open(out)
    assert store.is_complete()
    assert store.layout["shards"] == 2
    assert _snapshot(out, per_key=True) == _snapshot(big_clean, per_key=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_plan_only_then_shards_one_by_one(library: Path, model: Any, tmp_path: Path) -> None:
    sources, out = discover(library), tmp_path / "planned.zarr"
    first = encode_files(sources, out, model, INFERENCE, EncodeSettings(shards=2, plan_only=True))
    assert first.planned_here
    assert first.encoded == 0
    assert LatentStore.open(out).tracks(status=0)  # planned, nothing encoded yet
    with pytest.raises(StoreMismatchError, match="planned for 2 shard"):
        encode_files(sources, out, model, INFERENCE, EncodeSettings())
    done = [encode_files(sources, out, model, INFERENCE, EncodeSettings(shard=i, shards=2)) for i in (0, 1)]
    assert sum(d.encoded for d in done) == 4
    assert sum(d.failed for d in done) == 1
    assert done[0].partial  # shard 0 reports the planning failures
    assert LatentStore.open(out).is_complete()


def test_shard_auto_from_slurm_or_torchrun() -> None:
    from lincae_core import shard_from_env
    from lincae_core.errors import ConfigError

    assert shard_from_env({}) == (0, 1)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
    assert shard_from_env(
        {
            "SLURM_ARRAY_TASK_ID": "5",
            "SLURM_ARRAY_TASK_MIN": "4",
            "SLURM_ARRAY_TASK_COUNT": "2",
            "RANK": "0",
            "WORLD_SIZE": "8",
        }
    ) == (1, 2)
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "8"}) == (2, 8)
    with pytest.raises(ConfigError, match="RANK"):
        shard_from_env({"RANK": "8", "WORLD_SIZE": "8"})


# ----------------------------------------------------------------------------- speed options
def test_auto_batch_size_resolves_and_is_recorded(
    library: Path, model: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lincae_core.encoding.batching import choose_batch_size, dominant_length
    from lincae_core.inference import rule_batch_size
    from lincae_core.windowing import plan_windows

    auto = InferenceConfig(window_s=1.0, overlap_s=0.3, batch_size="auto")
    out = tmp_path / "auto.zarr"
    summary = encode_files(discover(library), out, model, auto, EncodeSettings())
    store = LatentStore.open(out)
    n = store.encoding["batch_size"]
    assert isinstance(n, int)
    assert n >= 1
    assert summary.batch_size == n
    assert store.encoding["batch_size_auto"]["how"] in ("rule", "probe")
    assert summary.model_seconds > 0
    # a resume keeps the planned batch size (here: a store planned with 3, resumed with auto)
    # (and the default memory format keeps the planned one: no "may differ" warning)
    fixed = tmp_path / "fixed.zarr"
    encode_files(
        discover(library), fixed, model, INFERENCE, EncodeSettings(plan_only=True, channels_last=False)
    )
    with caplog.at_level("WARNING", logger="lincae_core.encoding.identity"):
        resumed = encode_files(discover(library), fixed, model, auto, EncodeSettings())
    assert resumed.batch_size == 3
    assert "planned with" not in caplog.text
    # the rule: ~16 s of audio per pass on CPU; the dominant window length of a table
    assert rule_batch_size("cpu", 160000, 16000) == 2
    assert rule_batch_size("cpu", 8000, 16000) == 32
    # ~8 s a pass when one pass per core runs at once (the CPU default): 1 song window, 2 clips
    assert rule_batch_size("cpu", 160000, 16000, parallel=True) == 1
    assert rule_batch_size("cpu", 64000, 16000, parallel=True) == 2
    assert rule_batch_size("cuda", 160000, 16000, parallel=True) == rule_batch_size("cuda", 160000, 16000)
    frames = np.array([3, 3, 3, 40, 8, 9, 1, 14])
    assert dominant_length(frames, 8, 2) == (8, sum(len(plan_windows(int(f), 8, 2)) for f in frames))
    assert dominant_length(np.array([3] * 20 + [40]), 8, 2)[0] == 3
    # the probe (a big enough job): a positive candidate, cached per key
    calls: list[int] = []
    choice = choose_batch_size(
        lambda x: calls.append(len(x)),
        device_type="cpu",
        cache_key="test",
        segment_frames=4,
        segment_samples=8000,
        sample_rate=16000,
        job_segments=10**6,
    )
    assert choice.how == "probe"
    assert choice.batch_size in choice.ms_per_segment
    assert calls
    assert (
        choose_batch_size(
            lambda x: 1 / 0,
            device_type="cpu",
            cache_key="test",
            segment_frames=4,
            segment_samples=8000,
            sample_rate=16000,
            job_segments=10**6,
        )
        == choice
    )
    # parallel passes: the probe runs them as the encode does (one thread each, all at once)
    from lincae_core.encoding.forward import parallel_passes

    seen: list[tuple[int, int]] = []
    threads = torch.get_num_threads()
    run = parallel_passes(lambda x: seen.append((len(x), torch.get_num_threads())), 3)
    par = choose_batch_size(
        run,
        device_type="cpu",
        cache_key="test-par",
        segment_frames=4,
        segment_samples=8000,
        sample_rate=16000,
        job_segments=10**6,
        passes=3,
    )
    assert par.how == "probe"
    assert torch.get_num_threads() == threads  # restored
    assert {t for _, t in seen} == {1}
    assert len(seen) % 3 == 0  # every probe call ran three passes
    assert max(par.ms_per_segment) <= 2 * rule_batch_size("cpu", 8000, 16000, parallel=True)


def test_cli_batch_size_auto_is_logged(
    library: Path, micro_ckpt: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="lincae_core.encoding.batching"):
        res = _run_cli(
            str(library / "a.wav"), str(tmp_path / "a.zarr"), "-c", micro_ckpt, *CLI_WINDOW, "--json"
        )
    assert res.exit_code == 0, res.output
    assert "batch size auto:" in caplog.text
    n = json.loads(res.stdout)["batch_size"]
    assert n >= 1
    assert f"batch size {n}" in res.stderr
    assert _run_cli(str(library), str(tmp_path / "b.zarr"), "--batch-size", "0").exit_code == 2


def test_chunk_writes_are_byte_identical_to_per_track_writes(
    tmp_path: Path, model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 short tracks share chunks of 16 frames: batched writes give the same latent files."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(60):
        sf.write(lib / f"s{i:02d}.wav", music(16000, 0.2 + 0.15 * (i % 4), seed=i), 16000)
    create = LatentStore.create
    monkeypatch.setattr(LatentStore, "create", lambda *a, **k: create(*a, **{**k, "chunk_frames": 16}))
    stores = {}
    for mode in (True, False):
        stores[mode] = tmp_path / f"w{mode}.zarr"
        encode_files(discover(lib), stores[mode], model, INFERENCE, EncodeSettings(chunk_writes=mode))
    files = {
        m: sorted(p.relative_to(o) for p in (o / "latents").rglob("*") if p.is_file())
        for m, o in stores.items()
    }
    assert files[True] == files[False]
    assert len(files[True]) > 4
    for rel in files[True]:
        assert (stores[True] / rel).read_bytes() == (stores[False] / rel).read_bytes()
    assert _snapshot(stores[True]) == _snapshot(stores[False])


def test_encoder_origin_is_cached_until_the_weights_change(micro_cfg) -> None:  # noqa: ANN001
    """Enc(0) is computed once per model and window, and again after an in-place weight change."""
    from lincae_core.config import InferenceConfig
    from lincae_core.encoding.origin import encode_origin
    from lincae_core.nn.model import LinCAE

    torch.manual_seed(0)
    model = LinCAE(micro_cfg).eval()
    calls = []
    real = model.encode_representation

    def counting(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **kw)

    model.encode_representation = counting  # type: ignore[method-assign]
    inf = InferenceConfig()
    first = encode_origin(model, inf, 1)
    n = len(calls)
    assert n > 0
    np.testing.assert_array_equal(encode_origin(model, inf, 2)[:, 1], first[:, 0])
    assert len(calls) == n  # served from the cache
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    changed = encode_origin(model, inf, 1)
    assert len(calls) > n  # recomputed for the new weights
    assert not np.array_equal(changed, first)


def test_parallel_forward_does_not_depend_on_the_core_count(
    library: Path, model: Any, tmp_path: Path
) -> None:
    """Parallel passes (the CPU default with channels-last) run each pass on one thread and stitch
    in submission order: the same store bytes whatever the number of workers, within float16
    precision of one pass at a time."""
    sources = discover(library, files=["a.wav", "c.wav", "sub/b.flac"])
    threads = torch.get_num_threads()
    try:
        for n in (2, 3):
            torch.set_num_threads(n)
            encode_files(sources, tmp_path / f"p{n}.zarr", model, INFERENCE, EncodeSettings(dtype="float32"))
            assert torch.get_num_threads() == n  # restored after the run
    finally:
        torch.set_num_threads(threads)
    encode_files(
        sources,
        tmp_path / "serial.zarr",
        model,
        INFERENCE,
        EncodeSettings(dtype="float32", parallel_forward=False),
    )
    p2, p3 = LatentStore.open(tmp_path / "p2.zarr"), LatentStore.open(tmp_path / "p3.zarr")
    assert p2.encoding["parallel_forward"] is True
    assert LatentStore.open(tmp_path / "serial.zarr").encoding["parallel_forward"] is False
    for key in p2.keys():  # noqa: SIM118 - LatentStore.keys()
        np.testing.assert_array_equal(p2.read_track(key), p3.read_track(key))
        ref = LatentStore.open(tmp_path / "serial.zarr").read_track(key)
        atol = float(np.spacing(np.float16(np.sqrt(np.mean(ref.astype(np.float64) ** 2)))))
        np.testing.assert_allclose(p2.read_track(key), ref, rtol=1e-3, atol=atol)
