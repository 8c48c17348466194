"""Tests of lincae_core.linearity: thresholds, warnings and verdicts from model cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lincae_core import linearity_warnings
from lincae_core.errors import ConfigError
from lincae_core.linearity import THRESHOLDS, card_figures, linearity_verdict, trained_gain_range

GOOD = {
    "enc_hom_err": 0.5,
    "dec_hom_mss": 0.6,
    "dec_hom_snr": 14.0,
    "add_enc_err": 1.2,
    "add_dec_mss": 0.5,
    "add_dec_snr": 12.0,
}


def _card(figures: dict | None = None, homogeneity: bool | None = True, version: int = 1) -> dict:
    card: dict = {"model_id": "ab" * 32}
    if figures is not None:
        card["measured"] = {"version": version, "linearity": figures}
    if homogeneity is not None:
        card["training"] = {
            "config": {"homogeneity": homogeneity, "anneal": True, "gain_prob": 0.8, "total_steps": 100}
        }
    return card


def test_good_model_gets_no_warning() -> None:
    card = _card(GOOD)
    for op in ("gain", "mix", "extract"):
        assert linearity_warnings(card, op, [0.5, 2.0]) == []
    assert linearity_warnings(card, "extract") == []


@pytest.mark.parametrize(
    ("op", "key", "prop"),
    [
        ("gain", "enc_hom_err", "homogeneity"),
        ("gain", "dec_hom_mss", "homogeneity"),
        ("mix", "add_enc_err", "additivity"),
        ("extract", "add_dec_mss", "additivity"),
    ],
)
def test_one_line_per_failing_property(op: str, key: str, prop: str) -> None:
    bad = {**GOOD, key: THRESHOLDS[key].limit + 0.01}
    lines = linearity_warnings(_card(bad), op, [1.0])
    assert len(lines) == 1
    assert prop in lines[0]
    assert f"{THRESHOLDS[key].label} {bad[key]:.2f} > {THRESHOLDS[key].limit:g}" in lines[0]
    assert "abababababab" in lines[0]  # the model id, short
    # a property the op does not rely on is not reported
    other = "mix" if prop == "homogeneity" else "gain"
    assert linearity_warnings(_card(bad), other, [1.0]) == []


def test_missing_or_unknown_measurement_warns() -> None:
    for card in (_card(None), _card(GOOD, version=99), _card({"enc_hom_err": 0.1})):
        lines = linearity_warnings(card, "gain", [0.5])
        assert len(lines) == 1, lines
    assert "lincae card" in linearity_warnings(_card(None), "mix")[0]
    assert "Dec-Hom MSS not measured" in linearity_warnings(_card({"enc_hom_err": 0.1}), "gain", [0.5])[0]
    assert card_figures({}) is None


def test_gain_range() -> None:
    assert trained_gain_range(_card(GOOD)) == (0.0, 3.0)  # U[1 − C, 1 + 2C] with C from 1 to 0
    assert trained_gain_range(_card(GOOD, homogeneity=False)) == (1.0, 1.0)
    assert trained_gain_range(_card(GOOD, homogeneity=None)) is None
    lines = linearity_warnings(_card(GOOD), "gain", [-0.5])
    assert lines == [
        f"warning: model {'ab' * 6}: gain(s) -0.5 outside the training range: "
        "it was trained on gains in [0, 3]."
    ]
    assert len(linearity_warnings(_card(GOOD), "mix", [1.0, 3.5, 2.0, -1.0])) == 1
    assert "3.5, -1" in linearity_warnings(_card(GOOD), "mix", [1.0, 3.5, 2.0, -1.0])[0]
    assert "only at gain 1" in linearity_warnings(_card(GOOD, homogeneity=False), "gain", [0.5])[0]
    assert linearity_warnings(_card(GOOD, homogeneity=False), "gain", [1.0]) == []
    # no training record: only a negative gain is flagged
    assert linearity_warnings(_card(GOOD, homogeneity=None), "gain", [2.5]) == []
    assert "negative" in linearity_warnings(_card(GOOD, homogeneity=None), "gain", [-2.0])[0]


def test_mix_with_gains_also_relies_on_homogeneity() -> None:
    bad_hom = {**GOOD, "enc_hom_err": 5.0}
    assert linearity_warnings(_card(bad_hom), "mix", [1.0, 1.0]) == []
    assert "homogeneity" in linearity_warnings(_card(bad_hom), "mix", [0.5, 1.0])[0]


def test_unknown_op() -> None:
    with pytest.raises(ConfigError):
        linearity_warnings(_card(GOOD), "decode")


def test_verdict_sentence() -> None:
    good = linearity_verdict("A", GOOD)
    assert good.startswith("A: homogeneity is good enough for latent gain (Enc-Hom err 0.50 ≤ 0.75")
    assert "additivity is good enough for latent mixing and extraction" in good
    bad = linearity_verdict("B", {**GOOD, "add_dec_mss": 1.85})
    assert "additivity is not good enough for latent mixing and extraction (Add Dec MSS 1.85 > 1.2)" in bad


# --- the shipped models' measured cards (lincae card, committed) -------------------------------

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"lincae": ROOT / "lincae_core" / "default_model", "baseline": ROOT / "models" / "baseline-tiny"}


def _shipped(name: str) -> dict:
    return json.loads((SHIPPED[name] / "model_card.json").read_text())


def test_shipped_cards_are_measured() -> None:
    for name in SHIPPED:
        card = _shipped(name)
        assert card["measured"]["version"] == 1
        assert card["measured"]["model_id"] == card["model_id"]  # measured on these weights
        assert card["recommended_steps"] in (1, 2, 3, 4)
        assert card_figures(card) is not None


def test_shipped_lincae_passes_and_baseline_warns() -> None:
    lincae, baseline = _shipped("lincae"), _shipped("baseline")
    for op, gains in (("gain", [0.5]), ("gain", [2.0]), ("mix", [1.0, 0.8]), ("extract", [])):
        assert linearity_warnings(lincae, op, gains) == [], op
    assert "good enough for latent gain" in linearity_verdict("Lin-CAE", card_figures(lincae))
    assert "not good enough" not in linearity_verdict("Lin-CAE", card_figures(lincae))
    gain = linearity_warnings(baseline, "gain", [1.0])
    assert len(gain) == 1
    assert "homogeneity" in gain[0]
    for op in ("mix", "extract"):
        lines = linearity_warnings(baseline, op, [1.0, 1.0])
        assert len(lines) == 1
        assert "additivity" in lines[0]
        assert "Add Enc err" in lines[0]
    # the baseline was trained without gains: 0.5 is outside its training range too
    assert len(linearity_warnings(baseline, "gain", [0.5])) == 2
    assert "-1" in linearity_warnings(lincae, "gain", [-1.0])[0]


def test_gain_range_is_data_in_the_card() -> None:
    from lincae_core.config.train import MAX_GAIN_RANGE
    from lincae_core.train.augment import gain_range

    card = _card(GOOD)
    card["training"]["gain_range"] = [0.5, 2.0]  # what the card records wins over the config
    assert trained_gain_range(card) == (0.5, 2.0)
    # the recorded constant is the training code's widest range, and every step stays inside it
    assert gain_range(0, 1000) == MAX_GAIN_RANGE
    for k in range(0, 1001, 50):
        lo, hi = gain_range(k, 1000)
        assert MAX_GAIN_RANGE[0] <= lo <= hi <= MAX_GAIN_RANGE[1]
