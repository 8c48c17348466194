"""Tests of ``lincae eval``'s controls: the mixture as the estimate ("do nothing"), decode-then-
subtract in audio, and independent beside shared decode noise (lincae_core/evaluation/controls.py)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import music, randomize

from lincae_core.evaluation import metrics
from lincae_core.evaluation.batched import run_tasks
from lincae_core.evaluation.controls import ESTIMATES
from lincae_core.evaluation.protocol import (
    STEMS,
    ChunkCodec,
    Decode,
    EvalConfig,
    chunk_generator,
    music_task,
    run_task,
    stems_task,
)
from lincae_core.evaluation.runner import EvalResult, NamedModel, evaluate
from lincae_core.nn.model import LinCAE

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
LINCAE = shutil.which("lincae")
CONFIG = EvalConfig(chunk_s=1.0, overlap_s=0.25, seed=4, gain_dist="choice:0.5")


class NoiselessDecoder(LinCAE):
    """A decoder that draws no noise: every decode is a fixed function of its latents."""

    def decode_representation(self, z, steps=1, generator=None, generators=None) -> torch.Tensor:
        cfg = self.config
        rep = z.repeat_interleave(cfg.time_downsample, -1)[:, None].repeat(1, 2, 1, 1)
        return 0.3 * torch.tanh(rep).repeat_interleave(cfg.freq_bins // cfg.latent_dim, 2)


@pytest.fixture(scope="module")
def stems_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tracks of four stems, 2.2 s at the model rate (no resampling on load)."""
    root = tmp_path_factory.mktemp("controls") / "stems"
    for t in range(2):
        (root / f"t{t}").mkdir(parents=True)
        for i, stem in enumerate(STEMS):
            sf.write(
                root / f"t{t}" / f"{stem}.wav", 0.4 * music(SR, 2.2, seed=20 * t + i), SR, subtype="FLOAT"
            )
    return root


@pytest.fixture(scope="module")
def result(stems_dir: Path, micro_model: LinCAE, micro_cfg) -> EvalResult:
    """micro (noisy) and a noiseless decoder, 2 tracks, both noise settings, batched on one core."""
    torch.manual_seed(0)
    models = [
        NamedModel("a", micro_model),
        NamedModel("noiseless", randomize(NoiselessDecoder(micro_cfg)).eval()),
    ]
    return evaluate(models, stems_dir, config=CONFIG, jobs=1)


def _stems(stems_dir: Path, track: str) -> list[torch.Tensor]:
    return [torch.from_numpy(sf.read(stems_dir / track / f"{s}.wav", dtype="float32")[0]) for s in STEMS]


def test_do_nothing_is_the_sdr_of_the_mixture_against_each_stem(result: EvalResult, stems_dir: Path) -> None:
    mdx: dict[str, list[float]] = {s: [] for s in STEMS}
    for track in ("t0", "t1"):
        s = np.stack([x.numpy().astype(np.float64) for x in _stems(stems_dir, track)])
        mix = s.sum(0)
        row = result.do_nothing[SR][track]
        for i, stem in enumerate(STEMS):
            ref, err = s[i], mix - s[i]
            mdx[stem].append(10 * math.log10((np.sum(ref**2) + 1e-7) / (np.sum(err**2) + 1e-7)))
            alpha = np.dot(mix, ref) / (np.dot(ref, ref) + 1e-8)
            si = 10 * math.log10(
                np.sum((alpha * ref) ** 2) / (np.sum((mix - alpha * ref) ** 2) + 1e-8) + 1e-8
            )
            frames = [slice(k * SR, (k + 1) * SR) for k in range(2)]  # 2.2 s: two whole 1-s frames
            v4 = np.median([10 * math.log10(np.sum(ref[f] ** 2) / np.sum(err[f] ** 2)) for f in frames])
            assert row[f"do_nothing/{stem}/sdr_global_true"] == pytest.approx(mdx[stem][-1], abs=1e-3)
            assert row[f"do_nothing/{stem}/si_sdr_true"] == pytest.approx(si, abs=1e-3)
            assert row[f"do_nothing/{stem}/sdr_v4_true"] == pytest.approx(v4, abs=1e-3)
            assert row[f"do_nothing/{stem}/sdr_frames"] == 2
    summary = result.do_nothing_summary()[str(SR)]
    for stem in STEMS:
        assert summary[stem]["true"]["mdx_global"] == pytest.approx(np.mean(mdx[stem]), abs=1e-3)
        assert summary[stem]["frames"] == 4
    assert set(result.do_nothing) == {SR}  # once per eval (one rate), not per model


def test_decode_then_subtract_is_the_audio_subtraction(
    result: EvalResult, stems_dir: Path, micro_model: LinCAE
) -> None:
    codec = ChunkCodec(micro_model, CONFIG)
    s = torch.stack(_stems(stems_dir, "t0"))
    mix = s.sum(0)
    z = codec.encode(torch.cat([mix[None], s, mix[None] - s]))
    dec_mix = codec.decode(z[0:1], "stems/t0", mix.shape[-1])[0]
    dec_s = codec.decode(z[1:5], "stems/t0", mix.shape[-1])
    dec_rest = codec.decode(z[5:9], "stems/t0", mix.shape[-1])
    # independent noise: Dec(Enc(mix)) and each Dec(Enc(sᵢ)) again, each with a noise of its own
    ind_mix = codec.decode(z[0:1], "stems/t0", mix.shape[-1], roles=("mix",))[0]
    ind_s = codec.decode(z[1:5], "stems/t0", mix.shape[-1], roles=tuple(f"stem:{n}" for n in STEMS))
    row = result.controls1["a"]["t0"]
    for i, stem in enumerate(STEMS):
        estimates = {
            ("shared", "decode_subtract"): (dec_mix - dec_rest[i], dec_s[i]),
            ("shared", "decode_subtract_stems"): (
                dec_mix - sum(dec_s[j] for j in range(4) if j != i),
                dec_s[i],
            ),
            ("independent", "decode_subtract"): (ind_mix - dec_rest[i], ind_s[i]),
            ("independent", "decode_subtract_stems"): (
                ind_mix - sum(ind_s[j] for j in range(4) if j != i),
                ind_s[i],
            ),
        }
        for (noise, name), (est, ae) in estimates.items():
            p = f"{noise}/{name}/{stem}/"
            assert row[p + "si_sdr_ae"] == pytest.approx(float(metrics.si_sdr(est, ae)), abs=1e-3)
            assert row[p + "si_sdr_true"] == pytest.approx(float(metrics.si_sdr(est, s[i])), abs=1e-3)
            mdx = 10 * math.log10(
                (float(s[i].pow(2).sum()) + 1e-7) / (float((s[i] - est).pow(2).sum()) + 1e-7)
            )
            assert row[p + "sdr_global_true"] == pytest.approx(mdx, abs=1e-3)
        np.testing.assert_allclose(
            result.example_audio["a"][f"decode_subtract_{stem}"], dec_mix - dec_rest[i], atol=1e-5
        )


def test_shared_noise_numbers_are_the_protocols(
    result: EvalResult, stems_dir: Path, micro_model: LinCAE, one_thread
) -> None:
    """The controls add decodes, never change the protocol's: Tables 1-2 equal its own functions."""
    codec = ChunkCodec(micro_model, CONFIG)
    tasks = []
    for t in ("t0", "t1"):
        stems = _stems(stems_dir, t)
        tasks += [
            stems_task(SR, stems, f"stems/{t}"),
            music_task(SR, torch.stack(stems).sum(0), 0.5, f"music/{t}"),
        ]
    out = run_tasks(codec, tasks, jobs=1)
    for k, t in enumerate(("t0", "t1")):
        assert result.table1["a"][t] == out[2 * k][0]  # bit for bit
        assert result.table2["a"][t] == out[2 * k + 1]
        ctrl = result.controls1["a"][t]
        assert ctrl["shared/decoder/add_dec_mss"] == out[2 * k][0]["add_dec_mss"]
        for stem in STEMS:  # the shared latent row is Table 1's separation
            assert ctrl[f"shared/latent_subtract/{stem}/si_sdr_ae"] == out[2 * k][0][f"sep_{stem}_si_sdr"]
            assert (
                ctrl[f"shared/latent_subtract/{stem}/sdr_global_true"]
                == out[2 * k][0][f"sep_{stem}_sdr_global_true"]
            )
        assert result.controls2["a"][t]["shared/decoder/dec_hom_snr"] == out[2 * k + 1]["dec_hom_snr"]
    # the per-track path too: one track, request by request
    one = EvalConfig(chunk_s=1.0, overlap_s=0.25, seed=4, gain_dist="choice:0.5", max_tracks=1)
    per_track = evaluate([NamedModel("a", micro_model)], stems_dir, config=one, batched=False)
    stems = _stems(stems_dir, "t0")
    assert per_track.table1["a"]["t0"] == run_task(codec, stems_task(SR, stems, "stems/t0"))[0]


def test_independent_noise_differs_from_shared_except_for_a_noiseless_decoder(result: EvalResult) -> None:
    noisy, noiseless = result.controls("a"), result.controls("noiseless")
    assert set(noisy) == {"shared", "independent"}
    for noise in ("shared", "independent"):
        assert set(noisy[noise]) == {"decoder", *ESTIMATES}
        assert set(noisy[noise]["decoder"]) == {"add_dec_mss", "add_dec_snr", "dec_hom_mss", "dec_hom_snr"}
    for key in ("add_dec_snr", "dec_hom_snr"):
        assert noisy["independent"]["decoder"][key] < noisy["shared"]["decoder"][key] - 3
    for stem in STEMS:
        shared, ind = noisy["shared"]["latent_subtract"][stem], noisy["independent"]["latent_subtract"][stem]
        assert ind["ae"]["si_sdr"] < shared["ae"]["si_sdr"] - 3  # the aligned noise flattered it
    # a decoder that draws no noise: both settings give the same numbers
    for t in ("t0", "t1"):
        row = result.controls1["noiseless"][t]
        for key, value in row.items():
            if key.startswith("independent/"):
                assert row["shared/" + key.removeprefix("independent/")] == pytest.approx(value, abs=1e-4), (
                    key
                )
    assert noiseless["independent"]["decoder"] == pytest.approx(noiseless["shared"]["decoder"], abs=1e-4)


def test_noise_roles(micro_model: LinCAE, one_thread) -> None:
    """Decodes of identical latents: identical under one role (or shared), different across roles."""
    old = hashlib.sha256(b"lincae-eval:5:t:1").digest()  # today's shared noise, unchanged
    expected = torch.Generator().manual_seed(int.from_bytes(old[:8], "little") >> 1)
    assert torch.equal(
        torch.randn(8, generator=chunk_generator(5, "t", 1)), torch.randn(8, generator=expected)
    )
    codec = ChunkCodec(micro_model, EvalConfig(seed=5, chunk_s=1.0, overlap_s=0.25))
    x = torch.from_numpy(music(SR, 1.6, seed=1))
    z = codec.encode(x[None])[0]
    pair = torch.stack([z, z])
    shared = codec.decode(pair, "t", x.shape[-1])
    same_role = codec.decode(pair, "t", x.shape[-1], roles=("r", "r"))
    ind = codec.decode(pair, "t", x.shape[-1], roles=(None, "r"))
    assert torch.equal(shared[0], shared[1])
    assert torch.equal(same_role[0], same_role[1])
    assert torch.equal(ind[0], shared[0])  # role None is the shared noise
    assert not torch.allclose(ind[1], ind[0], atol=1e-3)
    batched = run_tasks(codec, [_one_decode(pair, x.shape[-1], (None, "r"))], jobs=1)[0]
    torch.testing.assert_close(batched, ind, rtol=0, atol=1e-5)


def _one_decode(z: torch.Tensor, length: int, roles: tuple[str | None, ...]):
    return (yield Decode(z, "t", length, roles=roles))


def test_shared_only_skips_the_independent_decodes(stems_dir: Path, micro_model: LinCAE) -> None:
    config = EvalConfig(
        chunk_s=1.0, overlap_s=0.25, seed=4, gain_dist="choice:0.5", noise="shared", max_tracks=1
    )
    res = evaluate([NamedModel("a", micro_model)], stems_dir, config=config, jobs=1)
    assert set(res.controls("a")) == {"shared"}
    assert list(res.protocol()["decode_noise_settings"]) == ["shared"]


@pytest.mark.skipif(LINCAE is None, reason="needs the installed console script")
def test_console_script_reports_the_controls(stems_dir: Path, micro_ckpt: str, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # this checkout's code
    args = ["eval", "--stems", str(stems_dir), "-c", micro_ckpt, "-o", str(out), "--max-tracks", "1"]
    args += ["--max-seconds", "1.5", "--chunk-s", "1", "--overlap-s", "0.25", "--json"]
    r = subprocess.run([LINCAE, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    saved = json.loads((out / "report.json").read_text())
    assert report["checkpoints"] == saved["checkpoints"]
    assert report["do_nothing"] == saved["do_nothing"]
    assert set(report["protocol"]["decode_noise_settings"]) == {"shared", "independent"}
    assert report["protocol"]["separation_estimates"] == ESTIMATES
    summary = report["do_nothing"]["sample_rates"]["16000"]["summary"]
    assert set(summary) == set(STEMS)
    assert all(math.isfinite(summary[s]["true"]["mdx_global"]) for s in STEMS)
    controls = report["checkpoints"][0]["controls"]
    assert set(controls) == {"shared", "independent", "tracks"}
    for noise in ("shared", "independent"):
        for name in ESTIMATES:
            assert set(controls[noise][name]["vocals"]) == {"ae", "true", "frames"}
    md = (out / "report.md").read_text()
    assert "## Reading the separation: do nothing, decode-then-subtract, decode noise" in md
    assert "- Decode noise **independent**" in md
    assert "| do nothing: ŝᵢ = mix (no model) vs sᵢ |" in md  # in the separation SDR table
    assert "| micro: decode-then-subtract Dec(Enc(mix)) − Dec(Enc(mix − sᵢ)) | independent |" in md
    page = (out / "report.html").read_text()
    assert "do nothing: ŝᵢ = mix (no model)" in page
    assert "micro (independent noise)" in page
