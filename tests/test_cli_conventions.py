"""One CLI convention: every option documented, --json one record a line, --steps means decoding
steps, only progress.py draws, train takes LINCAE_DEVICE."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import click
import numpy as np
import soundfile as sf
from click.testing import CliRunner

from lincae_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, click.Command]:
    return dict(cli.commands)


def test_every_visible_option_has_help() -> None:
    missing = [
        f"{name} {p.opts[0]}"
        for name, cmd in _commands().items()
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]
    assert missing == []


def test_steps_means_decoding_steps_everywhere() -> None:
    for name, cmd in _commands().items():
        for p in cmd.params:
            if isinstance(p, click.Option) and "--steps" in p.opts and not p.hidden:
                assert "decod" in (p.help or "").lower(), f"{name} --steps: {p.help}"


def test_train_steps_is_a_warning_alias_and_device_env(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["train", "-o", str(tmp_path / "run"), "--preset", "tiny", "--data", str(tmp_path / "none")]
    res = runner.invoke(cli, [*args, "--steps", "5"])
    assert "--schedule-steps" in res.output
    res = runner.invoke(cli, [*args, "--steps", "5", "--schedule-steps", "5"])
    assert res.exit_code == 2
    res = runner.invoke(cli, args, env={"LINCAE_DEVICE": "tpu"})
    assert res.exit_code != 0
    assert "tpu" in res.output


def test_only_progress_draws() -> None:
    users = []
    for f in (ROOT / "lincae_cli").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "tqdm" for n in names):
                users.append(f.relative_to(ROOT).as_posix())
    assert users == ["lincae_cli/progress.py"]


def test_json_is_one_record_a_line(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "a.wav", 0.1 * np.sin(np.arange(16000) / 5.0).astype(np.float32), 16000)
    runner = CliRunner()
    store = str(tmp_path / "a.zarr")
    for args in (
        ["encode", str(lib), store, "--json"],
        ["info", store, "--json"],
        ["info", str(ROOT / "lincae_core" / "default_model"), "--json"],
        ["decode", store, str(tmp_path / "dec"), "--json"],
    ):
        res = runner.invoke(cli, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        assert len(lines) >= 1
        for line in lines:
            assert isinstance(json.loads(line), dict | list), (args, line)
