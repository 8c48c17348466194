"""The batched store decoder: windows of several tracks per pass, parallel passes, Dask.

Every track's audio is a function of its latents, the seed and the window plan only: the same WAV
bytes whatever the batch size, ``--jobs`` or cluster; and equal to the per-track decode of before
(``inference.iter_decode``) within float32 rounding (the per-track decode ran a batch of one for a
clip and other kernels for other batch sizes, ~1e-8 in the audio).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from test_decoding import _store

from lincae_cli.main import cli
from lincae_core import inference
from lincae_core.config import InferenceConfig
from lincae_core.decoding import DecodeTrack, decode_store, decode_to_wav_stream, iter_decode_tracks
from lincae_core.decoding.forward import decode_windows
from lincae_core.nn.model import LinCAE

WINDOW = InferenceConfig(window_s=1.0, overlap_s=0.25)
LENGTHS = [16000 * 3 + 17, 4000, 4000, 9000, 4000, 16000 * 2, 700, 4000, 12000]


@pytest.fixture
def model(micro_model: LinCAE) -> LinCAE:
    micro_model.model_id = "micro-test-model"
    return micro_model


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.wav"))
    }


def _config(batch: int | str) -> InferenceConfig:
    return InferenceConfig(window_s=WINDOW.window_s, overlap_s=WINDOW.overlap_s, batch_size=batch)


def test_a_windows_audio_does_not_depend_on_its_batch(model: LinCAE, one_thread: None) -> None:
    torch.manual_seed(1)
    z = torch.rand(7, model.config.latent_dim, 6) * 2 - 1
    gens = [torch.Generator().manual_seed(i) for i in range(7)]
    alone = np.concatenate([decode_windows(model, z[i : i + 1], gens[i : i + 1], 2) for i in range(7)])
    for order in ([0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0], [3, 0, 6]):
        gens = [torch.Generator().manual_seed(i) for i in order]
        together = decode_windows(model, z[order], gens, 2)
        np.testing.assert_array_equal(together, alone[order])


@pytest.mark.parametrize("channels", [1, 2])
def test_decode_bytes_identical_whatever_batch_and_jobs(tmp_path: Path, model: LinCAE, channels: int) -> None:
    store = _store(tmp_path / "s.zarr", model, LENGTHS, channels=channels)
    runs = {}
    for batch, jobs in ((1, 1), (2, 2), (3, 1), (8, 2), ("auto", 3), (64, 2)):
        out = tmp_path / f"out-{batch}-{jobs}"
        decode_store(store.path, out, model, inference=_config(batch), jobs=jobs, steps=2, seed=5)
        runs[(batch, jobs)] = _digests(out)
    first = next(iter(runs.values()))
    assert len(first) == len(LENGTHS)
    for key, digests in runs.items():
        assert digests == first, key


def test_decode_equals_the_per_track_decode(tmp_path: Path, model: LinCAE, one_thread: None) -> None:
    """Against ``iter_decode`` track by track (the decode before batching): float32 rounding."""
    store = _store(tmp_path / "s.zarr", model, LENGTHS)
    tracks = []
    for t in store.tracks(status=1):
        tracks.append(DecodeTrack(store.read_track(t.key).astype(np.float32).transpose(1, 2, 0), t.samples))
    blocks: dict[int, list[np.ndarray]] = {i: [] for i in range(len(tracks))}
    ends = []
    for i, block in iter_decode_tracks(model, tracks, _config(4), seed=3, steps=2, jobs=2):
        if block is None:
            ends.append(i)
        else:
            blocks[i].append(block)
    assert sorted(ends) == list(range(len(tracks)))
    for i, t in enumerate(tracks):
        old = np.concatenate(list(inference.iter_decode(model, t.z, t.samples, _config(8), 3, 2)), -1)
        new = np.concatenate(blocks[i], -1)
        assert new.shape == old.shape == (1, t.samples)
        scale = float(np.abs(old).max())
        np.testing.assert_allclose(new, old, rtol=0, atol=1e-5 * scale)  # channels-last: ~1e-6
    # and the files: PCM_16 of the same audio, a sample off by one step at most where the float
    # rounding crossed a rounding boundary
    summary = decode_store(store.path, tmp_path / "o", model, inference=_config(4), seed=3, steps=2)
    for f, t in zip(summary.files, tracks, strict=True):
        old = np.concatenate(list(inference.iter_decode(model, t.z, t.samples, _config(8), 3, 2)), -1)
        buf = io.BytesIO()
        sf.write(buf, np.clip(old[0], -1, 1), 16000, "PCM_16", format="WAV")
        want = sf.read(io.BytesIO(buf.getvalue()), dtype="int16")[0].astype(np.int32)
        got = sf.read(f, dtype="int16")[0].astype(np.int32)
        assert np.abs(got - want).max() <= 1
        assert np.count_nonzero(got != want) <= max(2, len(want) // 1000)


def test_wav_stream_and_resampled_files_identical_whatever_jobs(tmp_path: Path, model: LinCAE) -> None:
    store = _store(tmp_path / "s.zarr", model, [16000 * 3 + 5, 4000])
    streams = []
    for jobs, batch in ((1, 1), (2, 5)):
        buf = io.BytesIO()
        decode_to_wav_stream(store.path, "t0", buf, model, "FLOAT", 1, 2, _config(batch), jobs=jobs)
        streams.append(buf.getvalue())
        decode_store(
            store.path, tmp_path / f"r{jobs}", model, inference=_config(batch), jobs=jobs, sample_rate=22050
        )
    assert streams[0] == streams[1]
    assert _digests(tmp_path / "r1") == _digests(tmp_path / "r2")
    info = sf.info(str(tmp_path / "r1" / "t0.wav"))
    assert info.samplerate == 22050
    assert info.frames == round((16000 * 3 + 5) * 22050 / 16000)


def test_decode_memory_is_bounded_by_tracks_in_flight(model: LinCAE) -> None:
    """At most ``max_open`` tracks are read ahead of the decoder."""
    read = []

    def tracks():  # noqa: ANN202
        for i in range(40):
            read.append(i)
            yield DecodeTrack(np.full((1, model.config.latent_dim, 2 + i % 3), 0.1, np.float32), 4000)

    finished = 0
    for _, block in iter_decode_tracks(model, tracks(), _config(64), steps=1, jobs=2, max_open=5):
        if block is None:
            finished += 1
            assert len(read) - finished <= 5 + 1, (len(read), finished)
    assert finished == 40


@pytest.mark.slow
def test_decode_on_a_dask_cluster_is_byte_identical(tmp_path: Path, model: LinCAE) -> None:
    distributed = pytest.importorskip("distributed", reason="pip install 'lincae[dask]'")
    store = _store(tmp_path / "s.zarr", model, LENGTHS)
    decode_store(store.path, tmp_path / "local", model, inference=_config(4), jobs=2)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        summary = decode_store(
            store.path, tmp_path / "dask", model, inference=_config(4), scheduler=cluster.scheduler_address
        )
    assert [Path(f).name for f in summary.files] == [f"t{i}.wav" for i in range(len(LENGTHS))]
    assert _digests(tmp_path / "local") == _digests(tmp_path / "dask")


def test_cli_decode_jobs_and_batch_size_give_the_same_files(
    tmp_path: Path, model: LinCAE, micro_ckpt: str
) -> None:
    store = _store(tmp_path / "s.zarr", model, LENGTHS[:5])
    runner = CliRunner()
    for name, extra in (("a", ["-j", "1"]), ("b", ["--jobs", "2", "--batch-size", "3"])):
        res = runner.invoke(
            cli,
            [
                "decode",
                str(store.path),
                str(tmp_path / name),
                "-c",
                micro_ckpt,
                "--force",
                "--window",
                "1",
                *extra,
            ],
        )
        assert res.exit_code == 0, res.output
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert len(_digests(tmp_path / "a")) == 5
