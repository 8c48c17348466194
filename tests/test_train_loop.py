"""Tests of lincae_core.train.loop, data, ema and train_state: objective, schedules, data, resume, CLI."""

from __future__ import annotations

import io
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from lincae_core.config import TrainConfig
from lincae_core.errors import ConfigError
from lincae_core.nn.consistency import loss_weight, pseudo_huber, sigma_from_t
from lincae_core.nn.model import LinCAE
from lincae_core.nn.transforms import to_representation
from lincae_core.train import data
from lincae_core.train.augment import augment_batch
from lincae_core.train.data import segment_length
from lincae_core.train.ema import EMA, ema_decay
from lincae_core.train.loop import ConsistencyObjective, get_lr, noise_levels, train
from lincae_core.train.state import load_state
from lincae_core.train.validation import validate

SMALL_MODEL = {"base_channels": 4, "bottleneck_base_channels": 32, "cond_channels": 16, "latent_dim": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


def _tone(sr: int, seconds: float, freq: float, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (amp * np.sin(2 * np.pi * freq * t) + 0.02 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Audio at 16 and 44.1 kHz (mono and stereo, WAV and FLAC), one silent and one corrupt file."""
    root = tmp_path_factory.mktemp("corpus")
    for i in range(4):
        sr = 44100 if i % 2 else 16000
        x = _tone(sr, 1.2, 220.0 * (i + 1), seed=i)
        audio = np.stack([x, 0.5 * x], 1) if i == 3 else x
        sf.write(root / f"tone{i}.{'flac' if i == 2 else 'wav'}", audio, sr)
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    (root / "corrupt.wav").write_bytes(b"RIFF" + b"\x00garbage" * 20)
    (root / "dir.wav").mkdir()  # a directory named like audio is not an item
    return root


def _cfg(corpus: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        preset="tiny",
        model=SMALL_MODEL,
        data=(str(corpus),),
        total_steps=8,
        batch_size=2,
        segment_frames=16,
        ema_every=2,
        log_every=1,
        checkpoint_every=100,
    )
    base.update(kw)
    return TrainConfig(**base)


# --- schedules and objective ------------------------------------------------------------------
def test_get_lr_warmup_and_cosine() -> None:
    cfg = TrainConfig(total_steps=800_000)
    assert cfg.warmup == 10_000
    assert get_lr(0, cfg) == 0.0
    assert get_lr(5_000, cfg) == pytest.approx(5e-5)
    assert get_lr(10_000, cfg) == pytest.approx(1e-4)
    assert get_lr(405_000, cfg) == pytest.approx(1e-6 + 0.5 * (1e-4 - 1e-6))
    assert get_lr(800_000, cfg) == pytest.approx(1e-6)
    tail = [get_lr(k, cfg) for k in range(10_000, 800_001, 10_000)]
    assert all(b < a for a, b in zip(tail, tail[1:], strict=False))


def test_noise_levels_pair() -> None:
    cfg, mcfg = TrainConfig(), TrainConfig(preset="tiny").model_config()
    s2, s1 = noise_levels(20_000, 0, cfg, mcfg, torch.Generator().manual_seed(0))
    assert (s2 >= s1).all()
    assert (s1 >= mcfg.sigma_min - 1e-6).all()
    assert (s2 <= mcfg.sigma_max).all()
    assert s2.median().item() == pytest.approx(0.58, abs=0.1)  # method.md §3: median sigma ~ 0.58
    t2 = (s2 ** (1 / 7) - 0.002 ** (1 / 7)) / (80 ** (1 / 7) - 0.002 ** (1 / 7))
    t1 = (s1 ** (1 / 7) - 0.002 ** (1 / 7)) / (80 ** (1 / 7) - 0.002 ** (1 / 7))
    inner = t2 > 0.2
    assert torch.allclose((t2 - t1)[inner], torch.full_like(t2[inner], 0.1), atol=1e-4)  # Delta-t(0)


def test_loss_weight_and_huber_constant() -> None:
    assert loss_weight(torch.tensor([2.0]), torch.tensor([1.5])).item() == pytest.approx(2.0)
    d = torch.zeros(1, 2, 1024, 64)
    d[0, 0, 0, 0] = 1.0
    c = 0.00054 * math.sqrt(2 * 1024 * 64)
    assert c == pytest.approx(0.19550, abs=1e-5)
    assert pseudo_huber(d).item() == pytest.approx(math.sqrt(1 + c * c) - c, rel=1e-5)


def _objective_inputs() -> tuple[LinCAE, Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    cfg = TrainConfig(preset="tiny", model=SMALL_MODEL, batch_size=2, segment_frames=16)
    mcfg = cfg.model_config()
    torch.manual_seed(0)
    model = LinCAE(mcfg)
    for p in model.parameters():  # leave the zero-init so the denoiser output depends on the weights
        p.data.add_(0.05 * torch.randn(p.shape))
    g = torch.Generator().manual_seed(1)
    x = 0.3 * torch.randn(2, segment_length(cfg, mcfg), generator=g)
    batch = augment_batch(x, cfg, 0, g)
    target = to_representation(batch.target, mcfg)
    s2, s1 = torch.full((4,), 1.0), torch.full((4,), 0.8)
    return model, batch, target, s2, s1, torch.randn(target.shape, generator=g)


def test_objective_teacher_is_detached_and_shares_the_noise() -> None:
    model, batch, target, s2, s1, eps = _objective_inputs()
    obj = ConsistencyObjective(model)
    obj(batch, target, s2, s1, eps).backward()
    got = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    assert any(k.startswith("encoder.") for k in got)
    assert any(k.startswith("down_layers") for k in got)

    def manual(detach: bool, noise_teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad()
        z = model.encoder(to_representation(batch.x, model.config))
        from lincae_core.train.augment import conditioning_latents

        pyr = model.decoder(conditioning_latents(z, batch))
        f_s = model.denoise(target + s2[:, None, None, None] * eps, s2, pyr)
        f_t = model.denoise(target + s1[:, None, None, None] * noise_teacher, s1, pyr)
        f_t = f_t.detach() if detach else f_t
        (loss_weight(s2, s1) * pseudo_huber(f_s - f_t)).mean().backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    same = manual(True, eps)
    assert all(torch.allclose(got[k], same[k], rtol=1e-4, atol=1e-7) for k in got)
    undetached = manual(False, eps)
    assert any(not torch.allclose(got[k], undetached[k], rtol=1e-3, atol=1e-6) for k in got)
    other_noise = manual(True, torch.randn(eps.shape, generator=torch.Generator().manual_seed(9)))
    assert any(not torch.allclose(got[k], other_noise[k], rtol=1e-3, atol=1e-6) for k in got)


def test_ema_warmup_and_period() -> None:
    assert ema_decay(1) == pytest.approx(2 / 11)
    assert ema_decay(10**6) == 0.9999
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9999, every=10)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not ema.update(model, 5)
    assert torch.equal(ema.shadow["weight"], start)
    assert ema.update(model, 10)
    assert ema.num_updates == 1
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], d * start + (1 - d) * (start + 1.0))


def test_sigma_grid_endpoints() -> None:
    assert sigma_from_t(0.0, 0.002, 80.0, 7.0) == pytest.approx(0.002)
    assert sigma_from_t(1.0, 0.002, 80.0, 7.0) == pytest.approx(80.0)


# --- data ----------------------------------------------------------------------------------------
def test_parse_data_spec() -> None:
    assert data.parse_data_spec("a/b") == ("a/b", 1.0)
    assert data.parse_data_spec("a/b:0.6") == ("a/b", 0.6)
    with pytest.raises(ConfigError, match="numeric weight"):
        data.parse_data_spec("a/b:x")
    with pytest.raises(ConfigError, match="positive"):
        data.parse_data_spec("a/b:-1")


def test_sampler_resamples_skips_and_redraws(corpus: Path) -> None:
    src = data.open_source(str(corpus))
    assert len(src) == 6  # 4 tones + silent + corrupt; the directory named dir.wav is no item
    sampler = data.CropSampler([src], 16000, 4864, seed=0)
    x = sampler.batch(24)
    assert x.shape == (24, 4864)
    assert x.dtype == torch.float32
    assert (x.pow(2).mean(-1).sqrt() >= 1e-3).all()  # silent crops were redrawn
    assert sampler.stats["unreadable"] == 1
    assert sampler.stats["silent"] > 0
    peaks = torch.fft.rfft(x).abs().argmax(-1) * 16000 / 4864
    assert all(min(abs(p - 220 * k) for k in (1, 2, 3, 4)) < 10 for p in peaks.tolist())  # resampled


def test_sampler_state_resumes_the_stream(corpus: Path) -> None:
    a = data.CropSampler([data.open_source(str(corpus))], 16000, 4864, seed=3)
    a.batch(5)
    state = a.state_dict()
    torch.save(state, io.BytesIO())  # plain types and tensors only
    b = data.CropSampler([data.open_source(str(corpus))], 16000, 4864, seed=99)
    b.load_state_dict(state)
    assert torch.equal(a.batch(6), b.batch(6))


def test_weighted_sources_and_webdataset_shards(tmp_path: Path) -> None:
    import webdataset as wds

    loud, quiet = tmp_path / "loud", tmp_path / "quiet.tar"
    loud.mkdir()
    sf.write(loud / "a.wav", _tone(16000, 1.0, 300, amp=0.5), 16000)
    with wds.TarWriter(str(quiet)) as sink:
        for k in range(2):
            buf = io.BytesIO()
            sf.write(buf, _tone(44100, 1.0, 500, amp=0.05, seed=k), 44100, format="FLAC")
            sink.write({"__key__": f"s{k}", "flac": buf.getvalue(), "json": {"k": k}})
    shard = data.open_source(f"{quiet}:1")
    assert len(shard) == 2  # the json members are not audio
    sampler = data.CropSampler([data.open_source(f"{loud}:9"), shard], 16000, 4864, seed=0)
    peak = sampler.batch(100).abs().amax(-1)
    from_shard = (peak < 0.2).float().mean().item()
    assert 0.02 < from_shard < 0.25  # weights 9:1


def test_musdb_folder_every_wav_is_an_item(tmp_path: Path) -> None:
    for track in ("t1", "t2"):
        for stem in ("mixture", "bass", "drums", "other", "vocals"):
            (tmp_path / track).mkdir(exist_ok=True)
            sf.write(tmp_path / track / f"{stem}.wav", _tone(16000, 0.5, 100), 16000)
    assert len(data.open_source(str(tmp_path))) == 10


def test_load_validation_is_deterministic(corpus: Path) -> None:
    a = data.load_validation(corpus, 16000, 4864, n_items=3)
    assert a.shape == (3, 4864)
    assert torch.equal(a, data.load_validation(corpus, 16000, 4864, n_items=3))


# --- runs -----------------------------------------------------------------------------------------
def test_resume_is_bit_exact(corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(corpus)
    one = train(cfg, tmp_path / "one")
    train(cfg, tmp_path / "two", stop_at=4)
    two = train(cfg, tmp_path / "two", resume=True)
    assert one.step == two.step == 8
    assert one.finished
    a, b = load_state(tmp_path / "one" / "state.pt"), load_state(tmp_path / "two" / "state.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"]["shadow"][key], b["ema"]["shadow"][key]), key
    assert one.weights_sha256 == two.weights_sha256
    assert one.model_id == two.model_id
    rows = [json.loads(r) for r in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))
    card = json.loads((tmp_path / "two" / "ema" / "model_card.json").read_text())["training"]
    assert card["steps"] == 8
    assert len(card["commands"]) == 2
    assert card["objective"] == "lin-cae"


def test_resume_with_longer_schedule_extends_it(corpus: Path, tmp_path: Path) -> None:
    import dataclasses

    cfg = _cfg(corpus)
    assert train(cfg, tmp_path / "r").finished  # K = 8
    longer = dataclasses.replace(cfg, total_steps=12)
    summary = train(longer, tmp_path / "r", resume=True)
    assert summary.finished
    assert summary.step == 12
    rows = [json.loads(r) for r in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    for r in rows[8:]:  # steps 9..12 read the learning rate off the new schedule
        assert r["lr"] == pytest.approx(get_lr(r["step"] - 1, longer), rel=1e-6)
    card = json.loads((tmp_path / "r" / "ema" / "model_card.json").read_text())["training"]
    assert card["schedule_changes"] == [{"step": 8, "from": 8, "to": 12}]
    assert card["steps"] == 12
    assert card["total_steps"] == 12
    with pytest.raises(ConfigError, match="below the run's step 12"):
        train(dataclasses.replace(cfg, total_steps=10), tmp_path / "r", resume=True)


def test_sigterm_saves_state_and_stops(corpus: Path, tmp_path: Path) -> None:
    def progress(step: int, total: int, row: dict[str, float]) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    summary = train(_cfg(corpus), tmp_path / "run", progress=progress)
    assert summary.interrupted
    assert summary.step == 3
    assert load_state(tmp_path / "run" / "state.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_validation_metrics_on_ema(corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(corpus, total_steps=2, valid=str(corpus), valid_every=2, valid_items=2)
    summary = train(cfg, tmp_path / "r")
    for key in ("snr", "mss", "enc_hom", "enc_add", "dec_add_snr", "dec_add_mss"):
        assert math.isfinite(summary.valid[key])
    rows = [json.loads(r) for r in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "valid" for r in rows)
    model = LinCAE(_cfg(corpus).model_config()).eval()
    x = data.load_validation(corpus, 16000, 4864, 2)
    assert validate(model, x) == validate(model, x)  # seeded decodes


def test_cli_train_and_errors(corpus: Path, tmp_path: Path) -> None:
    from lincae_cli.main import cli

    config = tmp_path / "run.json"
    config.write_text(json.dumps(_cfg(corpus, total_steps=2, data=()).to_dict()))
    runner = CliRunner()
    ok = runner.invoke(
        cli,
        [
            "train",
            "--config",
            str(config),
            "--data",
            f"{corpus}:2",
            "-o",
            str(tmp_path / "r"),
            "--no-additivity",
            "--end-exp",
            "3",
        ],
    )
    assert ok.exit_code == 0, ok.output
    saved = json.loads((tmp_path / "r" / "train_config.json").read_text())
    assert saved["additivity"] is False
    assert saved["end_exp"] == 3.0
    assert saved["data"] == [f"{corpus}:2"]
    cases = [
        (["--data", f"{corpus}:heavy", "-o", str(tmp_path / "a")], "numeric weight"),
        (["--data", str(tmp_path / "nothing"), "-o", str(tmp_path / "b")], "does not exist"),
        (["--data", str(tmp_path / "r"), "-o", str(tmp_path / "c")], "No audio found"),
        (["-o", str(tmp_path / "d"), "--resume"], "Cannot resume"),
        (["--data", str(corpus), "-o", str(tmp_path / "r")], "already holds a training run"),
    ]
    for args, message in cases:
        res = runner.invoke(cli, ["train", "--config", str(config), *args])
        assert res.exit_code == 2, (args, res.output)  # values of the command line: usage errors
        assert message in res.output, (args, res.output)


def test_cpu_presets_train_with_the_cpu_recipe(tmp_path: Path) -> None:
    from lincae_core.config import CPU_RECIPE
    from lincae_core.train.state import resolve_train_config

    tiny = resolve_train_config(None, tmp_path / "a", False, {"preset": "tiny"})
    assert (tiny.batch_size, tiny.segment_frames, tiny.lr, tiny.channels_last) == (8, 32, 2e-4, True)
    assert tiny.end_exp == 3.0  # docs/training-recipe.md
    assert all(getattr(tiny, k) == v for k, v in CPU_RECIPE.items())
    paper = resolve_train_config(None, tmp_path / "b", False, {})
    assert (paper.preset, paper.batch_size, paper.segment_frames) == ("paper", 20, 64)
    mine = resolve_train_config(None, tmp_path / "c", False, {"preset": "small", "batch_size": 4})
    assert (mine.batch_size, mine.segment_frames) == (4, 32)  # an explicit value wins
