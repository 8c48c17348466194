"""The one ``--device`` resolver (lincae_core.device) and its use by load_model and the CLI."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import load_model, resolve_device
from lincae_core.errors import ConfigError


def test_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="Expected device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda:0")


def test_load_model_takes_device_names_and_default(micro_ckpt: str) -> None:
    model = load_model(micro_ckpt, "auto")
    assert next(model.parameters()).device.type == resolve_device("auto").type
    assert model.model_id is not None
    assert model.card["model_id"] == model.model_id
    assert load_model("default").model_id == load_model().model_id  # `-c default` everywhere


@pytest.mark.parametrize("command", ["encode", "decode", "eval", "demo", "train"])
def test_every_model_command_has_device(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "--device" in result.output
