"""The CLI's foundation commands through CliRunner, and the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from _browser import CHROMIUM, open_page
from click.testing import CliRunner

from lincae_cli.main import cli


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("info", "import-weights"):
        assert name in result.output


def test_info_checkpoint_json(micro_ckpt: str) -> None:
    result = CliRunner().invoke(cli, ["info", micro_ckpt, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["kind"] == "checkpoint"
    assert info["preset"] == "micro"
    assert info["geometry"]["samples_per_frame"] == 2048
    p = info["parameters"]
    assert p["total"] == p["encoder"] + p["decoder"] + p["denoiser"] > 0
    assert len(info["model_id"]) == 64


def test_info_default_model_human() -> None:
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    assert "model_id:" in result.output
    assert "parameters:" in result.output


def test_info_bad_path_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "Error:" in result.output


def test_import_weights_cli(tmp_path: Path, micro_model) -> None:  # noqa: ANN001
    torch.save({"gen_state_dict": micro_model.state_dict()}, tmp_path / "m2l.pt")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(micro_model.config.to_dict()))
    result = CliRunner().invoke(
        cli, ["import-weights", str(tmp_path / "m2l.pt"), "-o", str(tmp_path / "ck"), "--config", str(cfg)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ck" / "model.safetensors").exists()
    bad = CliRunner().invoke(cli, ["import-weights", str(tmp_path / "m2l.pt"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1
    assert "missing key" in bad.output


def test_console_script_subprocess(micro_ckpt: str) -> None:
    exe = shutil.which("lincae")
    cmd = [exe] if exe else [sys.executable, "-m", "lincae_cli"]
    out = subprocess.run([*cmd, "info", micro_ckpt, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["kind"] == "checkpoint"
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert "0.1.0" in version.stdout


def test_demo_runs_the_main_job(tmp_path: Path, micro_ckpt: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "demo",
            "--workdir",
            str(tmp_path / "d"),
            "--tracks",
            "2",
            "--seconds",
            "2",
            "--checkpoint",
            micro_ckpt,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["tracks"] == 2
    assert out["latent_ops_s"] > 0
    assert set(out["metrics"]) >= {"latent remix vs audio remix", "separation vs Dec(Enc(vocals))"}
    for row in out["metrics"].values():
        assert all(np.isfinite(v) for v in row.values())
    for name in ("vocals_est", "remix", "mixture_gain"):
        assert len(list((tmp_path / "d" / "decoded" / name).glob("*.wav"))) == 2
    ceiling = out["metrics"]["latent remix vs audio remix"]
    assert {"ceiling_mss", "ceiling_snr_db"} <= set(ceiling)  # the model's own fidelity beside it
    assert "ceiling_mss" not in out["metrics"]["separation vs Dec(Enc(vocals))"]
    assert (tmp_path / "d" / "spectrograms.png").stat().st_size > 10_000
    wavs = {p.name for p in (tmp_path / "d" / "compare").glob("*.wav")}
    assert wavs >= {"audio_remix.wav", "latent_remix.wav"}
    assert out["library"] == "music"
    assert out["held_out"] is True  # the shipped excerpt, rendered with a soundfont training never used
    assert "HELD OUT" in result.stderr
    assert Path(out["report"]) == tmp_path / "d" / "report.html"
    assert "| latent remix vs audio remix |" in (tmp_path / "d" / "report.md").read_text()
    if CHROMIUM is not None:  # the listening page, as a person opens it (.ci/run installs chromium)
        seen = open_page(tmp_path / "d" / "report.html", tmp_path / "demo-report.png")
        assert len(seen.audio) == 8
        assert all(a["error"] is None and a["duration"] > 0 for a in seen.audio), seen.audio
        assert [i["width"] > 0 for i in seen.images] == [True]
        assert seen.console == []
        assert seen.failed_requests == []
        assert (tmp_path / "demo-report.png").stat().st_size > 10_000


def test_demo_synthetic_library_and_music_limits(tmp_path: Path, micro_ckpt: str) -> None:
    args = ["demo", "--workdir", str(tmp_path / "s"), "--seconds", "1", "--checkpoint", micro_ckpt, "--json"]
    result = CliRunner().invoke(cli, [*args, "--library", "synthetic", "--tracks", "1"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["library"] == "synthetic"
    assert out["held_out"] is False
    result = CliRunner().invoke(cli, [*args, "--tracks", "5"])  # the excerpt has 3 songs
    assert result.exit_code != 0
    assert "at most 3 tracks" in result.output


def test_output_option_is_spelled_the_same_everywhere(tmp_path: Path, micro_ckpt: str) -> None:
    """-o/--out on every command; positional forms and the old --output stay as aliases."""
    lib = tmp_path / "lib"
    lib.mkdir()
    import soundfile as sf

    sf.write(lib / "a.wav", np.sin(np.arange(24000) / 9.0).astype(np.float32) * 0.3, 16000)
    runner = CliRunner()
    enc = runner.invoke(cli, ["encode", str(lib), "-o", str(tmp_path / "s.zarr"), "-c", micro_ckpt])
    assert enc.exit_code == 0, enc.output
    assert (tmp_path / "s.zarr" / "zarr.json").exists()
    both = runner.invoke(cli, ["encode", str(lib), str(tmp_path / "t.zarr"), "-o", str(tmp_path / "u.zarr")])
    assert both.exit_code == 2
    assert "once" in both.output
    none = runner.invoke(cli, ["encode", str(lib)])
    assert none.exit_code == 2
    for args, where in (
        (["-o", str(tmp_path / "d1")], "d1"),
        (["--output", str(tmp_path / "d2")], "d2"),
        ([str(tmp_path / "d3")], "d3"),
    ):
        dec = runner.invoke(
            cli, ["decode", str(tmp_path / "s.zarr"), *args, "-c", micro_ckpt, "--device", "cpu"]
        )
        assert dec.exit_code == 0, dec.output
        assert (tmp_path / where / "a.wav").exists()
    exp = runner.invoke(
        cli, ["export", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "sh" / "%03d.tar"), "--window", "1"]
    )
    assert exp.exit_code == 0, exp.output
    assert (tmp_path / "sh" / "000.tar").exists()
    assert "--output" not in runner.invoke(cli, ["decode", "--help"]).output  # the alias is hidden


def test_demo_runs_twice_in_its_folder(tmp_path: Path, micro_ckpt: str) -> None:
    args = ["demo", "--workdir", str(tmp_path / "d"), "--library", "synthetic", "--tracks", "1"]
    args += ["--seconds", "1", "--checkpoint", micro_ckpt, "-q"]
    for _ in range(2):  # the demo owns its folder: a re-run replaces what it wrote
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""  # -q: no logs
