"""Is a model linear enough for latent gain, mixing and extraction? Thresholds and warnings.

The latent operations rely on the model's linearity (arXiv:2510.23530 Eqs. 1-2): ``gain`` on
homogeneity, ``mix`` and ``extract`` on additivity (``mix`` with gains other than 1 on both). The
figures are those ``lincae card`` measures into the model card (``measured.linearity``) and
``lincae eval`` reports (Tables 1-2); a property is good enough when every figure of it is within
its threshold (:data:`THRESHOLDS`, documented with the measured numbers in docs/evaluation.md).
The latent operations are also only trusted within the gains the model was trained on
(:func:`trained_gain_range`, from the training config recorded in the card).

Everything here is pure (dicts in, strings out): the commands decide where the lines go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lincae_core.config.train import trained_gain_range as trained_gain_range_of
from lincae_core.errors import ConfigError

__all__ = [
    "OPS",
    "PROPERTIES",
    "THRESHOLDS",
    "Threshold",
    "card_figures",
    "card_summary",
    "linearity_verdict",
    "linearity_warnings",
    "property_failures",
    "trained_gain_range",
]


@dataclass(frozen=True)
class Threshold:
    """The largest acceptable value of one figure (every thresholded figure is lower-is-better)."""

    key: str  # the figure's key in the card's measured.linearity and in lincae eval's tables
    label: str
    limit: float


# Chosen from the measured numbers of the shipped models (docs/evaluation.md): the Lin-CAE passes
# every one with a margin, the Music2Latent baseline fails at least one per property.
THRESHOLDS: dict[str, Threshold] = {
    t.key: t
    for t in (
        Threshold("enc_hom_err", "Enc-Hom err", 0.75),
        Threshold("dec_hom_mss", "Dec-Hom MSS", 0.9),
        Threshold("add_enc_err", "Add Enc err", 1.5),
        Threshold("add_dec_mss", "Add Dec MSS", 1.2),
    )
}
PROPERTIES: dict[str, tuple[str, ...]] = {
    "homogeneity": ("enc_hom_err", "dec_hom_mss"),
    "additivity": ("add_enc_err", "add_dec_mss"),
}
OPS: dict[str, tuple[str, ...]] = {
    "gain": ("homogeneity",),
    "mix": ("additivity",),
    "extract": ("additivity",),
    "concat": ("additivity", "homogeneity"),
}
USES = {"homogeneity": "latent gain", "additivity": "latent mixing and extraction"}
SUPPORTED_CARD_VERSIONS = (1,)


def card_summary(card: Mapping[str, Any]) -> dict[str, Any]:
    """What a store keeps of its model's card: the model id, the measured linearity figures, the
    training switches that fix the trained gain range (enough for :func:`linearity_warnings`) and
    the default origin form of the latent operations.
    """
    out: dict[str, Any] = {}
    for key in ("model_id", "origin_default"):
        if card.get(key):
            out[key] = card[key]
    measured = card.get("measured")
    if isinstance(measured, Mapping) and card_figures(card) is not None:
        out["measured"] = {"version": measured["version"], "linearity": dict(measured["linearity"])}
    config = (card.get("training") or {}).get("config")
    if isinstance(config, Mapping) and "homogeneity" in config:
        keys = ("homogeneity", "gain_prob", "total_steps", "anneal")
        out["training"] = {"config": {k: config[k] for k in keys if k in config}}
    return out


def card_figures(card: Mapping[str, Any]) -> dict[str, float] | None:
    """The measured linearity figures of a model card, or None when it has none (or a newer one)."""
    measured = card.get("measured")
    if not isinstance(measured, Mapping) or measured.get("version") not in SUPPORTED_CARD_VERSIONS:
        return None
    figures = measured.get("linearity")
    if not isinstance(figures, Mapping):
        return None
    return {k: float(v) for k, v in figures.items() if isinstance(v, (int, float))}


def property_failures(figures: Mapping[str, float] | None, prop: str) -> list[str]:
    """The figures of ``prop`` that are missing or over their threshold, as ``"label v > limit"``."""
    out = []
    for key in PROPERTIES[prop]:
        t = THRESHOLDS[key]
        value = None if figures is None else figures.get(key)
        if value is None or not math.isfinite(value):
            out.append(f"{t.label} not measured")
        elif value > t.limit:
            out.append(f"{t.label} {value:.2f} > {t.limit:g}")
    return out


def trained_gain_range(card: Mapping[str, Any]) -> tuple[float, float] | None:
    """The gains the model was trained on, as its card records them (``training.gain_range``).

    With homogeneity training (arXiv:2510.23530 Sec. 3.3) the gains are drawn from
    ``U[a_min(k), a_max(k)]`` = ``U[1 − C(k), 1 + 2 C(k)]`` with C(k) from 1 down to 0, so the range
    is ``[0, 3]``; without it every gain is 1. Cards written before the range was recorded get it
    from their training config (:func:`lincae_core.config.train.trained_gain_range`). None when the
    card records no training (imported or untrained weights).
    """
    training = card.get("training") or {}
    recorded = training.get("gain_range")
    if isinstance(recorded, Sequence) and len(recorded) == 2:
        return (float(recorded[0]), float(recorded[1]))
    config = training.get("config")
    if not isinstance(config, Mapping) or "homogeneity" not in config:
        return None
    return trained_gain_range_of(dict(config))


def _model_name(card: Mapping[str, Any]) -> str:
    mid = card.get("model_id")
    return f"model {str(mid)[:12]}" if mid else "the model"


def _gain_warning(card: Mapping[str, Any], gains: Sequence[float]) -> str | None:
    """One line when a gain lies outside the trained range (or the range is unknown)."""
    unusual = [g for g in gains if g != 1.0]
    if not unusual:
        return None
    rng = trained_gain_range(card)
    if rng is None:
        outside = [g for g in unusual if g < 0]
        if not outside:
            return None
        return (
            f"warning: {_model_name(card)}: negative gain(s) {', '.join(f'{g:g}' for g in outside)}; "
            "its card records no training gain range, and training gains are never negative."
        )
    lo, hi = rng
    outside = [g for g in unusual if g < lo or g > hi]
    if not outside:
        return None
    trained = "only at gain 1 (no homogeneity training)" if lo == hi else f"on gains in [{lo:g}, {hi:g}]"
    return (
        f"warning: {_model_name(card)}: gain(s) {', '.join(f'{g:g}' for g in outside)} outside "
        f"the training range: it was trained {trained}."
    )


def linearity_warnings(card: Mapping[str, Any], op: str, gains: Sequence[float] = ()) -> list[str]:
    """Warning lines for running a latent operation with a model (none when all is well).

    Args:
        card: the model's card (``LinCAE.card``, or a checkpoint's ``model_card.json``).
        op: ``"gain"`` (relies on homogeneity), ``"mix"`` (additivity, and homogeneity when a
            gain is not 1), ``"extract"`` (additivity) or ``"concat"`` (a crossfade: both).
        gains: the gains the operation applies (``gain``: the one gain; ``mix``: one per input).

    Returns:
        At most one line per property the operation relies on whose measured figures are missing
        or over :data:`THRESHOLDS`, and one line when a gain is outside the training range;
        each names the figures, their thresholds and docs/evaluation.md.
    """
    if op not in OPS:
        raise ConfigError(f"Expected a latent operation {', '.join(OPS)}. Got {op!r} instead.")
    props = list(OPS[op])
    if op == "mix" and any(g != 1.0 for g in gains):
        props.append("homogeneity")
    figures = card_figures(card)
    lines = []
    for prop in props:
        failures = property_failures(figures, prop)
        if figures is None:
            lines.append(
                f"warning: {_model_name(card)} has no measured linearity in its model card "
                f"({op} relies on {prop}); measure it with `lincae card`."
            )
        elif failures:
            lines.append(
                f"warning: {_model_name(card)}: {prop} ({op} relies on it) is worse than the "
                f"thresholds: {', '.join(failures)} (docs/evaluation.md)."
            )
    gain_line = _gain_warning(card, gains)
    if gain_line:
        lines.append(gain_line)
    return lines


def linearity_verdict(name: str, figures: Mapping[str, float]) -> str:
    """One sentence: is this model's linearity good enough for latent gain, mixing and extraction?

    Args:
        name: the model's name in the sentence.
        figures: the linearity figures (``enc_hom_err``, ``dec_hom_mss``, ``add_enc_err``,
            ``add_dec_mss``: the keys of the card's ``measured.linearity`` and of eval's tables).
    """
    parts = []
    for prop in PROPERTIES:
        failures = property_failures(figures, prop)
        shown = ", ".join(
            f"{THRESHOLDS[k].label} {figures[k]:.2f} ≤ {THRESHOLDS[k].limit:g}"
            for k in PROPERTIES[prop]
            if k in figures
        )
        if failures:
            parts.append(f"{prop} is not good enough for {USES[prop]} ({', '.join(failures)})")
        else:
            parts.append(f"{prop} is good enough for {USES[prop]} ({shown})")
    return f"{name}: {parts[0]}; {parts[1]}."
