"""Tests of ``lincae eval``: chunked OLA, seeded decodes, linear fakes, report files and the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from _browser import CHROMIUM, open_page
from click.testing import CliRunner
from conftest import music, randomize

from lincae_cli.main import cli
from lincae_core.checkpoint import save_checkpoint
from lincae_core.errors import ConfigError
from lincae_core.evaluation.corpus import find_stem_tracks
from lincae_core.evaluation.protocol import (
    STEMS,
    ChunkCodec,
    EvalConfig,
    GainDistribution,
    chunk_audio,
    overlap_add,
    score_music_track,
)
from lincae_core.evaluation.report import write_report
from lincae_core.evaluation.runner import NamedModel, evaluate
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE

SR = 16000


def _write_stems(root: Path, tracks: int, seconds: float, missing: str | None = None) -> None:
    """A tiny MUSDB-style folder: music-like bass/other/vocals, noise-burst drums, and a mixture."""
    for t in range(tracks):
        d = root / f"track_{t}"
        d.mkdir(parents=True)
        rng = np.random.default_rng(100 + t)
        stems = {s: 0.5 * music(SR, seconds, seed=10 * t + i) for i, s in enumerate(STEMS)}
        env = (np.arange(int(SR * seconds)) % (SR // 2) < 800).astype(np.float32)
        stems["drums"] = (0.3 * env * rng.standard_normal(env.shape)).astype(np.float32)
        for name, x in stems.items():
            if name != missing:
                sf.write(d / f"{name}.wav", x, SR, subtype="FLOAT")
        sf.write(d / "mixture.wav", sum(stems.values()), SR, subtype="FLOAT")


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaldata")
    _write_stems(root / "stems", 2, 2.5)
    _write_stems(root / "incomplete", 1, 2.5, missing="vocals")
    (root / "stems" / "track_9").symlink_to(root / "incomplete" / "track_0")
    (root / "music").mkdir()
    sf.write(root / "music" / "a.wav", music(SR, 2.5, seed=7), SR)
    sf.write(root / "music" / "b.wav", music(22050, 2.2, seed=8), 22050)  # resampled on load
    return root / "stems", root / "music"


@pytest.fixture(scope="module")
def cli_report(
    tmp_path_factory: pytest.TempPathFactory, data_dirs: tuple[Path, Path], micro_ckpt: str, micro_cfg
) -> tuple[Path, dict, str]:
    other = tmp_path_factory.mktemp("ckpt2") / "other"
    torch.manual_seed(1)
    save_checkpoint(randomize(LinCAE(micro_cfg), seed=1), other)
    out = tmp_path_factory.mktemp("report") / "rep"
    stems, music_dir = data_dirs
    args = [
        "eval",
        "--stems",
        str(stems),
        "--music",
        str(music_dir),
        "-c",
        micro_ckpt,
        "-c",
        str(other),
        "-o",
        str(out),
        "--max-seconds",
        "2",
        "--chunk-s",
        "1",
        "--overlap-s",
        "0.25",
        "--seed",
        "3",
        "--example-seconds",
        "1.5",
        "--json",
    ]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout), res.stdout


# --- chunking ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1000, 32000, 40000, 56000, 100_001])
def test_overlap_add_inverts_chunking(length: int) -> None:
    x = torch.randn(length, generator=torch.Generator().manual_seed(length))
    chunks = chunk_audio(x, 32000, 8000)
    padded = 32000 + max(math.ceil((length - 32000) / 24000), 0) * 24000
    assert chunks.shape == ((padded - 32000) // 24000 + 1, 32000)
    torch.testing.assert_close(overlap_add(chunks, 8000, length), x, rtol=0, atol=1e-6)


def test_chunking_matches_reference_code() -> None:
    """The paper setting: 88200-sample chunks, 22050 overlap, reference cross-fade OLA."""
    inference = pytest.importorskip("linear_cae.inference")
    x = torch.randn(300_000, generator=torch.Generator().manual_seed(0))
    chunks = chunk_audio(x, 88200, 22050)
    step, t = 88200 - 22050, x.shape[-1]
    ref_chunks = torch.nn.functional.pad(x, (0, (step - (t - 88200) % step) % step)).unfold(-1, 88200, step)
    torch.testing.assert_close(chunks, ref_chunks)
    y = torch.randn(chunks.shape, generator=torch.Generator().manual_seed(1))  # "decoded" chunks
    ref = inference._overlap_add_crossfade(y.clone(), 1, y.shape[0], step, 88200, t)
    torch.testing.assert_close(overlap_add(y, 22050, t), ref.reshape(-1), rtol=0, atol=1e-6)


def test_gain_distribution_parse_and_sample() -> None:
    dist = GainDistribution.parse("choice:0.25,0.5,0.75,1.1")
    assert dist == GainDistribution()
    assert dist.spec == "choice:0.25,0.5,0.75,1.1"
    gains = dist.sample(np.random.default_rng(0), 50)
    assert set(gains) <= {0.25, 0.5, 0.75, 1.1}
    assert len(set(gains)) == 4
    assert gains == dist.sample(np.random.default_rng(0), 50)  # seeded
    uni = GainDistribution.parse("uniform:0.5:2")
    assert all(0.5 <= a < 2 for a in uni.sample(np.random.default_rng(0), 20))
    for bad in ("gauss:1", "uniform:2:1", "choice:", "uniform:1"):
        with pytest.raises(ConfigError):
            GainDistribution.parse(bad)


def test_same_noise_for_corresponding_decodes(micro_model: LinCAE) -> None:
    codec = ChunkCodec(micro_model, EvalConfig(seed=5, chunk_s=1.0, overlap_s=0.25))
    x = torch.from_numpy(music(SR, 1.6, seed=1))  # 2 chunks
    z = codec.encode(x[None])[0]  # (N, D, Z)
    twice = codec.decode(torch.stack([z, z]), "t", x.shape[-1])
    torch.testing.assert_close(twice[0], twice[1], rtol=0, atol=0)
    alone = codec.decode(z[None], "t", x.shape[-1])[0]  # batch composition changes only rounding
    torch.testing.assert_close(alone, twice[0], rtol=0, atol=1e-6)
    assert not torch.equal(codec.decode(z[None], "u", x.shape[-1])[0], twice[0])  # noise depends on track


# --- linear fakes ------------------------------------------------------------------------


class LinearFake(LinCAE):
    """A perfectly linear autoencoder: Enc is a matrix on frames, Dec a matrix to the representation."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        g = torch.Generator().manual_seed(0)
        spf, d = cfg.samples_per_frame, cfg.latent_dim
        self.w_enc = torch.randn(spf, d, generator=g) / math.sqrt(spf)
        self.w_dec = torch.randn(d, 2 * cfg.freq_bins * cfg.time_downsample, generator=g) * 0.05

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        z, _ = transforms.padded_length(audio.shape[-1], cfg)
        x = torch.nn.functional.pad(audio, (0, z * cfg.samples_per_frame - audio.shape[-1]))
        return (x.reshape(x.shape[0], z, -1) @ self.w_enc).transpose(1, 2)  # (B, D, Z)

    def decode_representation(self, z, steps=1, generator=None, generators=None) -> torch.Tensor:
        cfg = self.config
        b, _, frames = z.shape
        rep = (z.transpose(1, 2) @ self.w_dec).reshape(b, frames, 2, cfg.freq_bins, cfg.time_downsample)
        return rep.permute(0, 2, 3, 1, 4).reshape(b, 2, cfg.freq_bins, frames * cfg.time_downsample)


def test_linear_encoder_has_zero_homogeneity_error(micro_cfg) -> None:
    codec = ChunkCodec(LinearFake(micro_cfg).eval(), EvalConfig())
    x = torch.from_numpy(music(SR, 3.0, seed=2))
    row = score_music_track(codec, x, 0.5, "t")  # 0.5 scales floats exactly
    assert row["enc_hom_err"] == 0.0
    assert row["gain"] == 0.5
    assert all(math.isfinite(v) for v in row.values())


def test_additive_fake_separates_perfectly(micro_cfg, data_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    fake = NamedModel("linear", LinearFake(micro_cfg).eval())
    result = evaluate([fake], data_dirs[0], config=EvalConfig(gain_dist="choice:0.5"))
    mean = result.means("table1", "linear")
    assert mean["add_enc_err"] < 1e-5
    assert mean["add_dec_snr"] > 60
    for stem in STEMS:
        assert mean[f"sep_{stem}_si_sdr"] > 40, mean
    sdr = result.separation_sdr("linear")
    assert all(sdr[stem]["ae"]["bsseval_v4"] > 40 and sdr[stem]["ae"]["mdx_global"] > 40 for stem in STEMS)
    assert "additivity is good enough" in result.linearity("linear")["verdict"]
    assert result.music_tracks == result.stem_tracks == ["track_0", "track_1"]  # stems' mixtures
    assert result.means("table2", "linear")["enc_hom_err"] < 1e-6
    assert [s["track"] for s in result.skipped] == ["track_9"]
    files = write_report(result, tmp_path)
    assert (tmp_path / files["separation_plot"]).stat().st_size > 0


# --- the command -------------------------------------------------------------------------


def _finite(node) -> bool:
    if isinstance(node, dict):
        return all(_finite(v) for v in node.values())
    return not isinstance(node, float) or math.isfinite(node)


def test_cli_report_json(cli_report: tuple[Path, dict, str]) -> None:
    out, stdout_json, _ = cli_report
    report = json.loads((out / "report.json").read_text())
    assert stdout_json["checkpoints"] == report["checkpoints"]
    assert [c["name"] for c in report["checkpoints"]] == ["micro", "other"]
    assert report["example"]["track"] == "track_0"
    assert report["protocol"]["example_seconds"] == 1.5
    assert set(report["example"]["scale"]) == {"micro", "other"}
    p = report["protocol"]
    got = (p["chunk_s"], p["overlap_s"], p["steps"], p["seed"], p["max_seconds"])
    assert got == (1.0, 0.25, None, 3, 2.0)
    assert [c["recommended_steps"] for c in report["checkpoints"]] == [1, 1]  # no card recommendation
    assert p["chunk_samples"]["16000"] == [16000, 4000]
    assert p["gain_distribution"]["kind"] == "choice"
    assert report["data"]["stem_tracks"] == ["track_0", "track_1"]
    assert report["data"]["music_tracks"] == ["a", "b"]
    assert report["data"]["skipped"][0]["track"] == "track_9"
    for ckpt in report["checkpoints"]:
        assert len(ckpt["model_id"]) == 64
        t1, t2 = ckpt["table1"], ckpt["table2"]
        assert set(t1["tracks"]) == {"track_0", "track_1"}
        assert set(t2["tracks"]) == {"a", "b"}
        keys = {"add_dec_mss", "add_dec_snr", "add_enc_err", "recon_mss", "recon_snr"}
        keys |= {f"sep_{s}_{m}" for s in STEMS for m in ("mss", "si_sdr", "sdr_global_ae", "sdr_global_true")}
        assert set(t1["mean"]) == keys  # the v4 SDRs aggregate by the median, in separation_sdr
        for stem in STEMS:
            for ref in ("ae", "true"):
                sdr = ckpt["separation_sdr"][stem][ref]
                assert set(sdr) == {"bsseval_v4", "mdx_global", "silent_frames", "frames"}
                assert sdr["frames"] == 4  # 2 tracks x 2 frames of 1 s
                assert sdr["silent_frames"] == 0
                assert math.isfinite(sdr["bsseval_v4"])
                assert sdr["mdx_global"] == pytest.approx(t1["mean"][f"sep_{stem}_sdr_global_{ref}"])
        assert ckpt["linearity"]["verdict"].startswith(ckpt["name"] + ": homogeneity is")
        assert set(ckpt["linearity"]["figures"]) == {
            "enc_hom_err",
            "dec_hom_mss",
            "dec_hom_snr",
            "add_enc_err",
            "add_dec_mss",
            "add_dec_snr",
        }
        assert set(t2["mean"]) == {"recon_mss", "recon_snr", "dec_hom_mss", "dec_hom_snr", "enc_hom_err"}
        assert all(r["gain"] in (0.25, 0.5, 0.75, 1.1) for r in t2["tracks"].values())
        assert _finite(t1)
        assert _finite(t2)
    gains = [c["table2"]["tracks"]["a"]["gain"] for c in report["checkpoints"]]
    assert gains[0] == gains[1]  # one gain per track, shared by the checkpoints


def test_cli_report_files(cli_report: tuple[Path, dict, str]) -> None:
    out, _, _ = cli_report
    md = (out / "report.md").read_text()
    assert "## Table 1" in md
    assert "## Table 2" in md
    assert "KAD" in md
    assert "## Separation SDR, as the separation community reads it" in md
    assert "| micro vs sᵢ |" in md
    verdict = md.split("## Linearity verdict")[1].split("##")[0]
    assert "Enc-Hom err ≤ 0.75" in verdict
    assert "micro: homogeneity is" in verdict
    assert "other: homogeneity is" in verdict
    for name in ("micro", "other"):
        assert sum(line.startswith(f"| {name} |") for line in md.splitlines()) == 2
    for png in ("separation_si_sdr.png", "spectrograms.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    for name in ("micro", "other"):
        folder = out / "examples" / name
        wavs = {p.name for p in folder.glob("*.wav")}
        assert wavs == {"mixture.wav", "autoencoded_mixture.wav", "remix_latent_sum.wav"} | {
            f"{kind}_{s}.wav" for s in STEMS for kind in ("separated", "stem", "autoencoded")
        }
        x, sr = sf.read(folder / "separated_vocals.wav")
        assert sr == SR
        assert x.shape == (24000,)  # --example-seconds 1.5
        assert np.isfinite(x).all()


def test_cli_errors(tmp_path: Path, micro_ckpt: str) -> None:
    (tmp_path / "empty" / "song").mkdir(parents=True)
    res = CliRunner().invoke(
        cli, ["eval", "--stems", str(tmp_path / "empty"), "-c", micro_ckpt, "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 2  # a folder given on the command line without the stems: a value error
    assert "bass.wav" in res.output
    res = CliRunner().invoke(
        cli,
        ["eval", "--stems", str(tmp_path), "-c", micro_ckpt, "-o", str(tmp_path / "r"), "--overlap-s", "3"],
    )
    assert res.exit_code == 2
    assert "overlap_s" in res.output
    with pytest.raises(ConfigError):
        find_stem_tracks(tmp_path / "missing")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_html_in_a_real_browser(cli_report: tuple[Path, dict, str], tmp_path: Path) -> None:
    """report.html opens in headless Chromium: every player and image loads, the console is clean."""
    out, _, _ = cli_report
    page = out / "report.html"
    copy = tmp_path / "copied-report"  # relative links: the folder works wherever it is copied
    shutil.copytree(out, copy)
    shot = tmp_path / "eval-report.png"
    seen = open_page(copy / page.name, shot)
    assert seen.title.startswith("lincae eval")
    assert len(seen.audio) >= 2 * (4 + 1)  # per checkpoint: mixture row and one row per stem
    assert all(a["error"] is None and a["ready"] >= 1 and a["duration"] > 0 for a in seen.audio), seen.audio
    assert seen.images
    assert all(i["width"] > 0 for i in seen.images), seen.images
    assert seen.console == []
    assert seen.failed_requests == []
    assert shot.stat().st_size > 10_000


# --- batched: all tracks' chunks and decodes in shared, parallel passes ------------------


def _close(a: dict, b: dict, what: str) -> None:
    """Scores equal within float32 rounding (relative 1e-4, or 1e-5 absolute near zero)."""
    assert a.keys() == b.keys(), what
    for k in a:
        if isinstance(a[k], float) and math.isnan(a[k]):
            assert math.isnan(b[k]), (what, k)
        else:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), (what, k, a[k], b[k])


def test_batched_evaluation_equals_the_per_track_protocol(
    micro_model: LinCAE, data_dirs: tuple[Path, Path], one_thread
) -> None:
    models = [NamedModel("a", micro_model)]
    config = EvalConfig(steps=2, chunk_s=1.0, overlap_s=0.25)
    old = evaluate(models, data_dirs[0], data_dirs[1], config=config, batched=False)
    new = evaluate(models, data_dirs[0], data_dirs[1], config=config, batched=True, jobs=2)
    again = evaluate(models, data_dirs[0], data_dirs[1], config=config, batched=True, jobs=1)
    one_by_one = evaluate(models, data_dirs[0], data_dirs[1], config=config, batched=True, group=1)
    for table in ("table1", "table2"):
        assert getattr(new, table) == getattr(again, table)  # bit for bit whatever jobs
        rows_old = getattr(old, table)["a"]
        for other in (new, one_by_one):  # other batches: the encoder's float32 rounding
            assert rows_old.keys() == getattr(other, table)["a"].keys()
            for track in rows_old:
                _close(rows_old[track], getattr(other, table)["a"][track], f"{table}/{track}")
    assert old.example_track == new.example_track
    for name, audio in old.example_audio["a"].items():
        np.testing.assert_allclose(new.example_audio["a"][name], audio, rtol=0, atol=1e-5)
