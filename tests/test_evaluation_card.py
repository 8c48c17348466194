"""Tests of ``lincae card`` (evaluation/card.py): the measured model card, its model id, ``lincae info``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import music

from lincae_cli.main import cli
from lincae_core import linearity_warnings, load_model
from lincae_core.errors import CheckpointError
from lincae_core.evaluation.card import STEP_COUNTS, measure_checkpoint, measure_model, recommended_steps
from lincae_core.evaluation.protocol import STEMS

SR = 16000


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stems_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cardstems")
    for t in range(2):
        for i, stem in enumerate(STEMS):
            (root / f"song{t}").mkdir(exist_ok=True)
            sf.write(root / f"song{t}" / f"{stem}.wav", 0.4 * music(SR, 2.2, seed=10 * t + i), SR)
    return root


@pytest.fixture
def ckpt(tmp_path: Path, micro_ckpt: str) -> Path:
    out = tmp_path / "ckpt"
    shutil.copytree(micro_ckpt, out)
    return out


def test_recommended_steps_ties_go_to_fewer_steps() -> None:
    rows = [{"steps": s, "mss": m} for s, m in zip(STEP_COUNTS, (2.7, 1.653, 1.667, 1.6527), strict=True)]
    assert recommended_steps(rows) == 2  # 1.65 == 1.65 at the card's two decimals
    assert recommended_steps(rows, decimals=4) == 4
    assert recommended_steps([{"steps": 1, "mss": 1.0}, {"steps": 2, "mss": 1.0}]) == 1


def test_card_command_writes_measured_card(ckpt: Path, stems_dir: Path, one_thread) -> None:
    weights, config = _digest(ckpt / "model.safetensors"), _digest(ckpt / "config.json")
    before = json.loads((ckpt / "model_card.json").read_text())
    res = CliRunner().invoke(
        cli,
        [
            "card",
            str(ckpt),
            "--stems",
            str(stems_dir),
            "--max-tracks",
            "1",
            "--max-seconds",
            "2",
            "--device",
            "cpu",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    card = json.loads((ckpt / "model_card.json").read_text())
    assert card["measured"] == out["measured"]
    assert {k: v for k, v in card.items() if k not in ("measured", "recommended_steps")} == before
    # the weights and the config are untouched, and the model id still verifies
    assert (_digest(ckpt / "model.safetensors"), _digest(ckpt / "config.json")) == (weights, config)
    model = load_model(ckpt, verify=True)
    assert model.model_id == card["model_id"] == out["model_id"] == card["measured"]["model_id"]

    m = card["measured"]
    assert m["version"] == 1
    assert m["data"]["stem_tracks"] == ["song0"]
    assert m["data"]["max_seconds"] == 2.0
    assert [r["steps"] for r in m["reconstruction"]] == [1, 2, 3, 4]
    assert card["recommended_steps"] == m["recommended_steps"] == recommended_steps(m["reconstruction"])
    assert set(m["linearity"]) == {
        "enc_hom_err",
        "dec_hom_mss",
        "dec_hom_snr",
        "add_enc_err",
        "add_dec_mss",
        "add_dec_snr",
    }
    assert set(m["homogeneity_by_gain"]) == {"0.25", "0.5", "0.75", "1.1"}
    assert np.mean([g["enc_hom_err"] for g in m["homogeneity_by_gain"].values()]) == pytest.approx(
        m["linearity"]["enc_hom_err"]
    )
    assert set(m["separation"]["si_sdr"]) == {*STEMS, "mean"}
    assert m["origin"]["ratio"] == pytest.approx(m["origin"]["enc0_norm"] / m["origin"]["music_norm"])
    assert all(np.isfinite(v) for v in m["linearity"].values())
    assert isinstance(linearity_warnings(card, "gain", [0.5]), list)

    # lincae info summarises it, in JSON and in text
    res = CliRunner().invoke(cli, ["info", str(ckpt), "--json"])
    summary = json.loads(res.stdout)["measured"]
    assert summary["same_weights"] is True
    assert summary["recommended_steps"] == card["recommended_steps"]
    assert set(summary["recon_mss_by_steps"]) == {"1", "2", "3", "4"}
    assert summary["origin_ratio"] == round(m["origin"]["ratio"], 2)
    assert summary["verdict"].startswith("this model: homogeneity is")
    text = CliRunner().invoke(cli, ["info", str(ckpt)]).stdout
    assert "recommended_steps:" in text
    assert "verdict:" in text

    # measuring again is refused without --overwrite (recommended_steps drives every decode) ...
    again_args = ["card", str(ckpt), "--stems", str(stems_dir), "--max-tracks", "2", "--max-seconds", "1"]
    res = CliRunner().invoke(cli, [*again_args, "--device", "cpu"])
    assert res.exit_code == 1
    assert "holds measurements already (1 tracks x 2.0 s; recommended_steps" in res.stderr
    assert "--overwrite" in res.stderr
    assert json.loads((ckpt / "model_card.json").read_text()) == card
    # ... a copy with -o leaves the checkpoint alone ...
    res = CliRunner().invoke(cli, [*again_args, "-o", str(ckpt.parent / "copy"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads((ckpt / "model_card.json").read_text()) == card
    copy = json.loads((ckpt.parent / "copy" / "model_card.json").read_text())
    assert copy["measured"]["data"]["stem_tracks"] == ["song0", "song1"]
    assert load_model(ckpt.parent / "copy", verify=True).model_id == model.model_id
    # ... and --overwrite replaces the block (a human summary goes to stdout; less data is warned)
    res = CliRunner().invoke(cli, [*again_args, "--overwrite", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "less than the 1 x 2 s of the card it replaces" not in res.stderr  # 2 x 1 s is as much
    assert "recommended_steps" in res.stdout
    assert "origin: |Enc(0)| / |Enc(music)|" in res.stdout
    again = json.loads((ckpt / "model_card.json").read_text())
    assert again["measured"]["data"]["stem_tracks"] == ["song0", "song1"]
    assert load_model(ckpt, verify=True).model_id == model.model_id


def test_card_errors(tmp_path: Path, stems_dir: Path) -> None:
    with pytest.raises(CheckpointError):
        measure_checkpoint(tmp_path, stems_dir)
    res = CliRunner().invoke(cli, ["card", str(tmp_path), "--stems", str(stems_dir)])
    assert res.exit_code == 1
    assert "model.safetensors" in res.output


def test_card_never_writes_into_the_installed_package(stems_dir: Path, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    from lincae_core.checkpoint import DEFAULT_MODEL_DIR

    before = (DEFAULT_MODEL_DIR / "model_card.json").read_bytes()
    res = CliRunner().invoke(cli, ["card", "default", "--stems", str(stems_dir), "--overwrite"])
    assert res.exit_code == 1
    assert "inside the installed lincae package: give -o DIR" in res.stderr
    assert (DEFAULT_MODEL_DIR / "model_card.json").read_bytes() == before
    # a measured copy, on less data than the shipped card: said so
    with caplog.at_level("WARNING"):
        res = CliRunner().invoke(
            cli,
            [
                "card",
                "default",
                "--stems",
                str(stems_dir),
                "--max-tracks",
                "1",
                "--max-seconds",
                "1",
                "-o",
                str(tmp_path / "mine"),
                "-j",
                "1",
            ],
        )
    assert res.exit_code == 0, res.output
    assert (DEFAULT_MODEL_DIR / "model_card.json").read_bytes() == before
    assert (
        json.loads((tmp_path / "mine" / "model_card.json").read_text())["measured"]["data"]["max_seconds"]
        == 1
    )
    assert "less than the" in caplog.text


def test_info_without_measurement(micro_ckpt: str) -> None:
    res = CliRunner().invoke(cli, ["info", micro_ckpt, "--json"])
    assert json.loads(res.stdout)["measured"].startswith("not measured")


def test_batched_card_equals_the_per_track_protocol(micro_model, stems_dir: Path, one_thread) -> None:
    """Every chunk, gain and step count in shared passes (duplicates once): the same figures
    within float32 rounding."""
    old = measure_model(micro_model, stems_dir, max_tracks=1, max_seconds=2.0, batched=False)
    new = measure_model(micro_model, stems_dir, max_tracks=1, max_seconds=2.0, jobs=2)
    assert new["recommended_steps"] == old["recommended_steps"]
    for a, b in zip(old["reconstruction"], new["reconstruction"], strict=True):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    for block in ("linearity", "origin"):
        assert new[block] == pytest.approx(old[block], rel=1e-4, abs=1e-5), block
    for gain, figures in old["homogeneity_by_gain"].items():
        assert new["homogeneity_by_gain"][gain] == pytest.approx(figures, rel=1e-4, abs=1e-5)
    # dB near 0 (a random model): channels-last rounding moves them by < 1e-4 dB
    assert new["separation"]["si_sdr"] == pytest.approx(old["separation"]["si_sdr"], rel=1e-4, abs=1e-3)
