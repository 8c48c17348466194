"""Operations know their model: gain/mix/extract warn from the linearity their store's model
measured (both shipped models), and for gains outside the trained range; -q silences them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from lincae_cli.main import cli
from lincae_core import LatentStore

BASELINE = str(Path(__file__).resolve().parents[1] / "models" / "baseline-tiny")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A two-track library encoded with the shipped Lin-CAE (default) and the shipped baseline."""
    root = tmp_path_factory.mktemp("lin")
    rng = np.random.default_rng(0)
    (root / "lib").mkdir()
    for name in ("a", "b"):
        sf.write(root / "lib" / f"{name}.wav", (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    out = {}
    for label, ckpt in (("lincae", "default"), ("baseline", BASELINE)):
        path = root / f"{label}.zarr"
        r = CliRunner().invoke(cli, ["encode", str(root / "lib"), str(path), "-c", ckpt])
        assert r.exit_code == 0, r.output
        out[label] = str(path)
    return out


def warnings_of(*args: str) -> list[str]:
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return [line for line in r.stderr.splitlines() if line.startswith("warning:")]


def test_stores_record_their_models_measured_linearity(stores: dict[str, str]) -> None:
    card = LatentStore.open(stores["lincae"]).model_card
    assert card["measured"]["linearity"]["add_dec_mss"] < 1.2
    assert card["training"]["config"]["homogeneity"] is True
    assert LatentStore.open(stores["baseline"]).model_card["training"]["config"]["homogeneity"] is False


def test_lincae_is_trusted_the_baseline_is_not(stores: dict[str, str], tmp_path: Path) -> None:
    lin, base = stores["lincae"], stores["baseline"]
    assert warnings_of("gain", lin, "--gain", "0.5", "-o", str(tmp_path / "g1")) == []
    assert warnings_of("mix", lin, lin, "-o", str(tmp_path / "m1")) == []
    assert warnings_of("extract", lin, "--minus", lin, "-o", str(tmp_path / "e1")) == []
    w = warnings_of("gain", base, "--gain", "0.5", "-o", str(tmp_path / "g2"))
    assert any("homogeneity" in line for line in w)
    assert any("outside the training range" in line for line in w)  # the baseline saw gain 1 only
    w = warnings_of("mix", base, base, "-o", str(tmp_path / "m2"))
    assert len(w) == 1
    assert "additivity" in w[0]
    assert "Add Dec MSS" in w[0]
    assert any(
        "additivity" in line
        for line in warnings_of("extract", base, "--minus", base, "-o", str(tmp_path / "e2"))
    )


def test_gains_outside_the_trained_range_warn_and_quiet_silences(
    stores: dict[str, str], tmp_path: Path
) -> None:
    lin = stores["lincae"]
    w = warnings_of("gain", lin, "--gain", "-1", "-o", str(tmp_path / "n"))
    assert len(w) == 1
    assert "-1" in w[0]
    assert "[0, 3]" in w[0]
    assert warnings_of("gain", lin, "--gain", "4", "-o", str(tmp_path / "big")) != []
    assert warnings_of("gain", lin, "--gain", "-1", "-q", "-o", str(tmp_path / "q")) == []


def test_stores_record_enc0_and_origin_option(stores: dict[str, str], tmp_path: Path) -> None:
    lin = LatentStore.open(stores["lincae"])
    frames, o = lin.origin_frames(), lin.origin()
    assert frames is not None
    assert frames.shape[1:] == (1, 64)
    assert o is not None
    ratio = np.linalg.norm(o) / np.linalg.norm(lin.read_track("a").astype(np.float32).mean(0))
    assert 0.05 < ratio < 2  # silence does not encode to zero (the shipped model's origin)
    r = CliRunner().invoke(
        cli, ["gain", stores["lincae"], "--gain", "0.5", "--origin", "affine", "-o", str(tmp_path / "aff")]
    )
    assert r.exit_code == 0, r.output
    out = LatentStore.open(tmp_path / "aff")
    z = lin.read_track("a").astype(np.float32)
    np.testing.assert_allclose(out.read_track("a").astype(np.float32), 0.5 * z + 0.5 * o, atol=2e-3)
    assert out.lineage[-1]["args"]["origin"] == "affine"
