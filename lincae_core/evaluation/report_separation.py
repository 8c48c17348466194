"""The report's separation sections: the separation SDR as the community reads it, and the
controls (:mod:`.controls`): the mixture as the estimate, decode-then-subtract beside latent
subtraction, and shared beside independent decode noise.

Each control table is a :class:`ControlTable` (caption, headers, rows of formatted cells) that
:mod:`.report` writes into ``report.md`` and ``report.html``; :func:`fmt` and :func:`md_table`
format every number and Markdown table of the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lincae_core.evaluation.controls import ESTIMATES, NOISE_SETTINGS
from lincae_core.evaluation.protocol import STEMS
from lincae_core.evaluation.result import EvalResult

__all__ = [
    "ControlTable",
    "control_tables",
    "controls_intro",
    "do_nothing_sdr_rows",
    "fmt",
    "md_table",
    "noise_lines",
    "separation_lines",
]

LABELS: dict[str, str] = {
    "latent_subtract": f"latent subtraction {ESTIMATES['latent_subtract']}",
    "decode_subtract": f"decode-then-subtract {ESTIMATES['decode_subtract']}",
    "decode_subtract_stems": f"decode-then-subtract, stems {ESTIMATES['decode_subtract_stems']}",
}
DO_NOTHING_LABEL = "do nothing: ŝᵢ = mix (no model)"


def fmt(v: float | None) -> str:
    """A figure as the report prints it: two decimals, a real minus sign, ``n/a`` when missing."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}".replace("-", "−")


def md_table(headers: list[str], rows: list[tuple[str, list[str]]], first: str = "Model") -> list[str]:
    """A Markdown table: a header row (``first``, then ``headers``) and a row per (label, cells)."""
    lines = ["| " + " | ".join([first, *headers]) + " |", "|" + "---|" * (len(headers) + 1)]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    return lines


@dataclass(frozen=True)
class ControlTable:
    """One table of the controls: a caption, the column headers and rows of formatted cells."""

    caption: str
    headers: list[str]
    rows: list[list[str]]


def _do_nothing_labels(result: EvalResult) -> list[tuple[str, dict[str, Any]]]:
    summaries = result.do_nothing_summary()
    return [
        (DO_NOTHING_LABEL + (f" at {rate} Hz" if len(summaries) > 1 else ""), summary)
        for rate, summary in summaries.items()
    ]


def do_nothing_sdr_rows(result: EvalResult) -> list[tuple[str, list[str]]]:
    """Rows of the separation SDR table (v4 / MDX per stem vs sᵢ, silent frames) for doing nothing."""
    rows = []
    for label, summary in _do_nothing_labels(result):
        cells = [
            f"{fmt(summary[s]['true']['bsseval_v4'])} / {fmt(summary[s]['true']['mdx_global'])}"
            for s in STEMS
        ]
        skipped = sum(int(summary[s]["true"]["silent_frames"]) for s in STEMS)
        frames = sum(int(summary[s]["frames"]) for s in STEMS)
        rows.append((f"{label} vs sᵢ", [*cells, f"{skipped} of {frames}"]))
    return rows


def _estimate_rows(result: EvalResult, cell: Any) -> list[list[str]]:
    """Per model, estimate and noise setting, one row: label, noise, a cell per stem."""
    rows = []
    for m in result.models:
        controls = result.controls(m.name)
        for key, label in LABELS.items():
            for noise, node in controls.items():
                if key in node:
                    rows.append([f"{m.name}: {label}", noise, *(cell(node[key][s]) for s in STEMS)])
    return rows


def control_tables(result: EvalResult) -> list[ControlTable]:
    """The controls' tables: separation against Dec(Enc(sᵢ)), against sᵢ, and the decoder figures."""
    stems = [s.capitalize() for s in STEMS]
    autoencoded = ControlTable(
        "Separation against Dec(Enc(sᵢ)) (the paper's reference), MSS↓ / SI-SDR↑ (dB), by estimate "
        "and decode noise",
        ["Estimate", "Noise", *stems],
        _estimate_rows(result, lambda n: f"{fmt(n['ae']['mss'])} / {fmt(n['ae']['si_sdr'])}"),
    )

    def true(n: dict[str, Any]) -> str:
        return f"{fmt(n['true']['mss'])} / {fmt(n['true']['si_sdr'])} / {fmt(n['true']['mdx_global'])}"

    stem = ControlTable(
        "Separation against the stem sᵢ, MSS↓ / SI-SDR↑ / MDX SDR↑ (dB), by estimate and decode noise",
        ["Estimate", "Noise", *stems],
        [[label, "—", *(true(d[s]) for s in STEMS)] for label, d in _do_nothing_labels(result)]
        + _estimate_rows(result, true),
    )
    keys = ("add_dec_mss", "add_dec_snr", "dec_hom_mss", "dec_hom_snr")
    decoder = ControlTable(
        "Decoder linearity by decode noise (the decoder figures of Tables 1 and 2)",
        ["Model (decode noise)", "Add Dec MSS↓", "Add Dec SNR↑", "Dec-Hom MSS↓", "Dec-Hom SNR↑"],
        [
            [f"{m.name} ({noise} noise)", *(fmt(node["decoder"].get(k)) for k in keys)]
            for m in result.models
            for noise, node in result.controls(m.name).items()
        ],
    )
    return [autoencoded, stem, decoder]


def noise_lines(result: EvalResult) -> list[str]:
    """The protocol's decode-noise bullets: which setting is which, and where each is used."""
    shared = NOISE_SETTINGS["shared"]
    lines = [f"- Decode noise **shared**: {shared}."]
    if result.config.noise == "both":
        lines.append(
            f"- Decode noise **independent** (the controls' tables, beside shared): "
            f"{NOISE_SETTINGS['independent']}."
        )
    return lines


def controls_intro(result: EvalResult) -> str:
    """The paragraph that says what the controls are and how to read them."""
    independent = result.config.noise == "both"
    return (
        "Three readings of the separation numbers beside the paper's protocol (docs/evaluation.md, "
        '"Reading the separation numbers"). **Do nothing**: the mixture itself as the estimate of '
        "each stem, against the stem (no model); a separation should beat it against sᵢ (and an "
        "all-zero estimate scores exactly 0 dB MDX SDR against sᵢ). "
        "**Decode-then-subtract**: the subtraction done on audio after decoding, "
        f"{ESTIMATES['decode_subtract']} (the audio twin of the latent estimate: the same encodes) and "
        f"{ESTIMATES['decode_subtract_stems']}; latent arithmetic earns its keep where its row beats "
        "these. **Decode noise**: under shared noise the estimate and Dec(Enc(sᵢ)) draw the same noise, "
        "so a decoder that ignores its latent scores well against Dec(Enc(sᵢ))"
        + (
            "; under independent noise each decode draws its own, as for a user who decodes them apart, "
            "and the gap between the two rows is what the aligned noise contributed. Waveform scores "
            "(SNR, SI-SDR) between two decodes of different noise are low for any stochastic decoder: "
            "compare the MSS across the settings."
            if independent
            else "; independent noise was not run (--noise shared)."
        )
    )


def _sdr_lines(result: EvalResult) -> list[str]:
    """The separation SDR by the community's conventions, against both references."""
    headers = [f"{s.capitalize()} v4 / MDX" for s in STEMS] + ["silent frames skipped"]
    rows = []
    for m in result.models:
        sdr = result.separation_sdr(m.name)
        for ref, label in (("ae", "vs Dec(Enc(sᵢ))"), ("true", "vs sᵢ")):
            cells = [f"{fmt(sdr[s][ref]['bsseval_v4'])} / {fmt(sdr[s][ref]['mdx_global'])}" for s in STEMS]
            skipped = sum(int(sdr[s][ref]["silent_frames"] or 0) for s in STEMS)
            frames = sum(int(sdr[s][ref]["frames"] or 0) for s in STEMS)
            rows.append((f"{m.name} {label}", [*cells, f"{skipped} of {frames}"]))
    rows += do_nothing_sdr_rows(result)
    return [
        "",
        "## Separation SDR, as the separation community reads it",
        "",
        "Stems separated by latent arithmetic, ŝᵢ = Dec(Enc(mix) − Enc(mix − sᵢ)), in dB, against the "
        "autoencoded stem (the paper's reference) and against the true stem. **v4**: BSSEval v4 "
        "(museval) SDR per 1-s frame, median over frames, then median over tracks; a frame whose "
        "reference or estimate is digital silence is skipped and counted. **MDX**: the Music Demixing "
        "Challenge global SDR 10·log10(Σs²/Σ(s − ŝ)²) per track, mean over tracks. The last row is "
        "no separation at all: the mixture as the estimate of each stem.",
        "",
        *md_table(headers, rows),
    ]


def _controls_lines(result: EvalResult) -> list[str]:
    """The controls: doing nothing, decode-then-subtract, shared and independent decode noise."""
    lines = ["", "## Reading the separation: do nothing, decode-then-subtract, decode noise", ""]
    lines += [controls_intro(result)]
    for t in control_tables(result):
        lines += [
            "",
            f"{t.caption}:",
            "",
            *md_table(t.headers[1:], [(r[0], r[1:]) for r in t.rows], t.headers[0]),
        ]
    return lines


def separation_lines(result: EvalResult) -> list[str]:
    """The report's separation sections: the community SDR table, then the controls."""
    return _sdr_lines(result) + _controls_lines(result)
