"""Checkpoint format, model id, strict import of released weights (oracle: linear-cae)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from conftest import micro_config, randomize

from lincae_core.checkpoint import save_checkpoint
from lincae_core.config import get_preset
from lincae_core.errors import CheckpointError
from lincae_core.models import load_model
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE
from lincae_core.release import import_weights, reference_kwargs


def test_round_trip_and_model_id(micro_ckpt: str, micro_model: LinCAE) -> None:
    model = load_model(micro_ckpt)
    assert model.config == micro_model.config
    for k, v in micro_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    card = json.loads((Path(micro_ckpt) / "model_card.json").read_text())
    assert card["model_id"] == model.model_id
    assert len(model.model_id) == 64
    assert json.loads((Path(micro_ckpt) / "config.json").read_text())["format_version"] == 1


def test_tampered_weights_are_refused(tmp_path: Path, micro_model: LinCAE) -> None:
    out = tmp_path / "ck"
    save_checkpoint(micro_model, out)
    card = json.loads((out / "model_card.json").read_text())
    card["model_id"] = "0" * 64
    (out / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="do not match the model card"):
        load_model(out)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_model(tmp_path / "missing")
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not a lincae checkpoint"):
        load_model(tmp_path)


def _reference_autoencoder(cfg):  # noqa: ANN001, ANN202
    inference = pytest.importorskip("linear_cae.inference")
    front, gen = reference_kwargs(cfg)
    torch.manual_seed(3)
    ae = inference.Autoencoder(front, gen, {}, scale_factor=1.0)
    randomize(ae.generator, 0.02)
    return ae.eval()


@pytest.mark.parametrize(
    ("fmt", "preset"),
    [
        ("linear-cae", "micro"),
        ("music2latent", "micro"),
        pytest.param("linear-cae", "paper", marks=pytest.mark.slow),
    ],
)
def test_import_reference_weights_matches_reference(tmp_path: Path, fmt: str, preset: str) -> None:
    cfg = micro_config() if preset == "micro" else get_preset("paper")
    ref = _reference_autoencoder(cfg)
    x = 0.3 * torch.randn(2, 9000 if preset == "micro" else 30000)
    with torch.no_grad():
        z_ref = ref.encode(x)  # also triggers the reference's duplicate `encoder.*` keys
    src = tmp_path / "weights.pth"
    if fmt == "linear-cae":
        torch.save(ref.state_dict(), src)
        assert any(k.startswith("encoder.") for k in ref.state_dict())
    else:
        torch.save({"gen_state_dict": ref.generator.state_dict(), "it": 3}, src)
    mid = import_weights(src, tmp_path / "ck", cfg)
    model = load_model(tmp_path / "ck")
    assert model.model_id == mid
    card = json.loads((tmp_path / "ck" / "model_card.json").read_text())
    assert card["source"]["format"] == fmt
    with torch.no_grad():
        z = model.encode_representation(transforms.to_representation(x, cfg))
        assert torch.allclose(z, z_ref, atol=1e-5)
        noise = torch.randn(2, 2, cfg.freq_bins, 8 * z.shape[-1]) * 80
        a = ref.generator.forward_generator(z_ref, noise, 80.0)
        b = model.denoise(noise, 80.0, model.decoder(z))
        assert torch.allclose(a, b, atol=1e-5)


def test_import_is_strict(tmp_path: Path, micro_model: LinCAE) -> None:
    state = dict(micro_model.state_dict())
    state["generator.surprise"] = torch.zeros(1)
    bad = {("generator." + k if not k.startswith("generator.") else k): v for k, v in state.items()}
    torch.save(bad, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unknown key 'surprise'"):
        import_weights(tmp_path / "extra.pth", tmp_path / "o1", micro_model.config)
    state = dict(micro_model.state_dict())
    state.pop("conv_out.weight")
    torch.save({"gen_state_dict": state}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing key 'conv_out.weight'"):
        import_weights(tmp_path / "missing.pt", tmp_path / "o2", micro_model.config)
    assert not (tmp_path / "o1").exists()
    assert not (tmp_path / "o2").exists()


class _Evil:
    def __reduce__(self):  # noqa: ANN204
        return (Path("/tmp/lincae-pwned").touch, ())


def test_import_never_unpickles_arbitrary_objects(tmp_path: Path, micro_model: LinCAE) -> None:
    src = tmp_path / "evil.pt"
    torch.save({"gen_state_dict": micro_model.state_dict(), "payload": _Evil()}, src, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="not a loadable weights file"):
        import_weights(src, tmp_path / "o", micro_model.config)
    assert not Path("/tmp/lincae-pwned").exists()
