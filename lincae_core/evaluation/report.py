"""Write an evaluation result: JSON, Markdown in the layout of arXiv:2510.23530 Tables 1-2, plots, audio.

``REPORT_DIR`` gets ``report.json`` (every number), ``report.md`` (one row per checkpoint, with
the paper's rows for reference), ``separation_si_sdr.png`` (per-stem separation SI-SDR by
checkpoint), ``spectrograms.png`` (one separated stem next to its references) and
``examples/<checkpoint>/*.wav`` (the example track: mixture, stems separated by latent arithmetic,
latent-domain remix ``Dec(Σ zᵢ)``). matplotlib is imported lazily, with the Agg backend.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from lincae_core.audio import save_audio
from lincae_core.evaluation.listening import ListeningExample, ListeningTable, write_listening_page
from lincae_core.evaluation.plots import plot_separation, plot_spectrograms
from lincae_core.evaluation.protocol import STEMS
from lincae_core.evaluation.report_separation import (
    control_tables,
    controls_intro,
    noise_lines,
    separation_lines,
)
from lincae_core.evaluation.report_separation import fmt as _fmt
from lincae_core.evaluation.report_separation import md_table as _table
from lincae_core.evaluation.result import EvalResult
from lincae_core.linearity import THRESHOLDS

__all__ = ["markdown_report", "summary_tables", "write_report"]

# (header, metric key); separation cells are "MSS / SI-SDR" per stem, as in the paper.
TABLE1_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Add Dec MSS↓", "add_dec_mss"),
    ("Add Dec SNR↑", "add_dec_snr"),
    ("Add Enc err↓", "add_enc_err"),
    ("Recon MSS↓", "recon_mss"),
    ("Recon SNR↑", "recon_snr"),
)
TABLE2_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Recon MSS↓", "recon_mss"),
    ("Recon SNR↑", "recon_snr"),
    ("Dec-Hom MSS↓", "dec_hom_mss"),
    ("Dec-Hom SNR↑", "dec_hom_snr"),
    ("Enc-Hom err↓", "enc_hom_err"),
)
# arXiv:2510.23530 Tables 1-2 (44.1 kHz, MUSDB18-HQ test / MusicCaps), for reference only.
PAPER_TABLE1: tuple[tuple[str, str], ...] = (
    (
        "M2L (retrained)",
        "5.21 | −0.48 | 2.73 | 0.97 | 0.10 | 39.56 / −11.11 | 12.26 / −11.95 | 5.30 / −11.81 | 3.49 / −12.56",
    ),
    (
        "Lin-CAE",
        "0.99 | 1.22 | 0.60 | 1.00 | 0.21 | 1.58 / −0.59 | 1.16 / −0.28 | 1.21 / −1.82 | 1.23 / −1.18",
    ),
    (
        "− Additivity (hom. only)",
        "1.68 | 0.30 | 2.07 | 1.39 | −0.06 | 6.61 / −7.12 | 2.37 / −6.11 | 3.44 / −8.52 | 2.87 / −12.18",
    ),
    (
        "− Homogeneity (add. only)",
        "4.24 | −0.89 | 1.42 | 0.96 | 0.43 | 23.61 / −5.96 | 7.84 / −5.14 | 2.98 / −8.30 | 3.08 / −7.95",
    ),
)
PAPER_TABLE2: tuple[tuple[str, str], ...] = (
    ("M2L (retrained)", "0.98 | 3.09 | 2.27 | −2.30 | 8.52"),
    ("Lin-CAE", "1.01 | 3.19 | 1.37 | 0.86 | 0.69"),
)


def _table1_rows(result: EvalResult) -> list[tuple[str, list[str]]]:
    rows = []
    for m in result.models:
        mean = result.means("table1", m.name)
        cells = [_fmt(mean.get(k)) for _, k in TABLE1_COLUMNS]
        cells += [f"{_fmt(mean.get(f'sep_{s}_mss'))} / {_fmt(mean.get(f'sep_{s}_si_sdr'))}" for s in STEMS]
        rows.append((m.name, cells))
    return rows


def _table2_rows(result: EvalResult) -> list[tuple[str, list[str]]]:
    rows = []
    for m in result.models:
        mean = result.means("table2", m.name)
        rows.append((m.name, [_fmt(mean.get(k)) for _, k in TABLE2_COLUMNS] + ["—"]))
    return rows


def _headers() -> tuple[list[str], list[str]]:
    stems = [f"{s.capitalize()} MSS↓ / SI-SDR↑" for s in STEMS]
    return [h for h, _ in TABLE1_COLUMNS] + stems, [h for h, _ in TABLE2_COLUMNS] + ["KAD↓"]


def summary_tables(result: EvalResult) -> str:
    """Return Tables 1 and 2 (means over tracks, one row per checkpoint) as Markdown."""
    h1, h2 = _headers()
    n1, n2 = len(result.stem_tracks), len(result.music_tracks)
    lines = [f"Table 1 — additivity and separation ({n1} stems tracks of {result.stems_dir})", ""]
    lines += _table(h1, _table1_rows(result))
    lines += [
        "",
        f"Table 2 — reconstruction and homogeneity ({n2} tracks of "
        f"{result.music_dir or 'the stems mixtures'})",
        "",
    ]
    lines += _table(h2, _table2_rows(result))
    return "\n".join(lines) + "\n"


def _protocol_lines(result: EvalResult) -> list[str]:
    p = result.protocol()
    chunks = ", ".join(f"{c} / {o} samples at {r} Hz" for r, (c, o) in p["chunk_samples"].items())
    return [
        f"- Chunks: {p['chunk_s']} s with {p['overlap_s']} s overlap ({chunks}), each chunk encoded "
        "on its own, decoded to the chunk length, linear-crossfade overlap-add, trimmed to the track.",
        f"- Decoding: {p['steps'] or 'each checkpoint' + chr(39) + 's recommended'} step(s) (listed with "
        f"the checkpoints), seed {p['seed']}.",
        *noise_lines(result),
        f"- Homogeneity gain per track: {p['gain_distribution']['spec']} (seed {p['gain_seed']}); "
        "each track's gain is in report.json.",
        f"- Table 1 mixture: {p['mixture']}. Table 2 tracks: {p['music_source']}.",
        f"- Audio: mono at each model's rate; max {p['max_tracks'] or 'all'} tracks, "
        f"max {p['max_seconds'] or 'full'} s per track.",
        "- MSS: mean over 3 resolutions (10/25/50 ms windows, hop = win/2) of spectral convergence "
        "+ mean |Δ ln mel| (80 Slaney mels), per track. SNR/SI-SDR in dB, zero_mean=False.",
        "- Errors (Add Enc, Enc-Hom) are relative L2 over every latent of a track (all chunks), not %.",
        "- KAD is not computed: it needs a CLAP model, which is out of scope offline.",
    ]


def markdown_report(
    result: EvalResult, files: dict[str, str] | None = None, example: dict[str, Any] | None = None
) -> str:
    """Return ``report.md``: the protocol, Tables 1-2 with the paper's rows, and the artifacts."""
    h1, h2 = _headers()
    lines = ["# lincae eval report", "", "## Checkpoints", ""]
    for m in result.models:
        d = m.describe()
        note = " (untrained)" if d["untrained"] else (f", {d['steps']} training steps" if d["steps"] else "")
        steps = result.config.steps or d["recommended_steps"]
        lines.append(
            f"- **{m.name}**: `{d['checkpoint']}`, preset {d['preset']}, {d['sample_rate']} Hz, "
            f"model id `{(d['model_id'] or '')[:12]}`{note}; decoded with {steps} step(s)"
        )
    lines += ["", "## Protocol (arXiv:2510.23530 Sec. 4; docs/evaluation.md)", "", *_protocol_lines(result)]
    if result.skipped:
        lines += ["", "Skipped: " + "; ".join(f"{s['track']} ({s['reason']})" for s in result.skipped)]
    lines += [
        "",
        "## Table 1 — MUSDB18-HQ-style stems: additivity and separation",
        "",
        f"Mean over {len(result.stem_tracks)} tracks of `{result.stems_dir}`. "
        "Separation cells are MSS↓ / SI-SDR↑ of Dec(Enc(mix) − Enc(mix − sᵢ)) against Dec(Enc(sᵢ)).",
        "",
        *_table(h1, _table1_rows(result)),
        "",
        "Paper (44.1 kHz, MUSDB18-HQ test, 50 tracks):",
        "",
        *_table(h1, [(n, r.split(" | ")) for n, r in PAPER_TABLE1]),
    ]
    lines += [
        "",
        "## Table 2 — reconstruction and homogeneity",
        "",
        f"Mean over {len(result.music_tracks)} tracks of "
        f"{'`' + result.music_dir + '`' if result.music_dir else 'the stems folder mixtures'}.",
        "",
        *_table(h2, _table2_rows(result)),
        "",
        "Paper (44.1 kHz, MusicCaps):",
        "",
        *_table(h2, [(n, r.split(" | ") + ["—"]) for n, r in PAPER_TABLE2]),
    ]
    lines += separation_lines(result) + _linearity_lines(result)
    if files:
        lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in files.items()]
    if example:
        lines += _example_lines(example)
    return "\n".join(lines) + "\n"


def _linearity_lines(result: EvalResult) -> list[str]:
    """One paragraph: is each checkpoint linear enough for latent gain, mixing and extraction?"""
    limits = ", ".join(f"{t.label} ≤ {t.limit:g}" for t in THRESHOLDS.values())
    verdicts = " ".join(result.linearity(m.name)["verdict"] for m in result.models)
    return [
        "",
        "## Linearity verdict",
        "",
        f"With the thresholds of docs/evaluation.md ({limits}; homogeneity serves `lincae gain`, "
        f"additivity `lincae mix` and `lincae extract`), on the means above: {verdicts}",
    ]


def _example_lines(example: dict[str, Any]) -> list[str]:
    seconds = f"first {example['seconds']:g} s" if example["seconds"] else "whole track"
    lines = [
        "",
        f"## Example track: {example['track']} ({seconds})",
        "",
        "`examples/<checkpoint>/`: `mixture.wav` (Σ stems), `autoencoded_mixture.wav` (Dec(Enc(mix))), "
        "`remix_latent_sum.wav` (latent-domain remix Dec(Σ Enc(sᵢ))) and `separated_<stem>.wav` "
        "(Dec(Enc(mix) − Enc(mix − sᵢ))).",
        "",
    ]
    scaled = {name: scale for name, scale in example["scale"].items() if scale != 1.0}
    lines += [f"- {name}: files scaled by {g:.3g} (peak above full scale)" for name, g in scaled.items()]
    return lines


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


# The example's input, its reconstruction and its latent-domain edits, per checkpoint.
_EXAMPLE_FILES = ("mixture", "autoencoded_mixture", "remix_latent_sum")
_EXAMPLE_PREFIXES = ("separated_", "stem_", "autoencoded_")


def _write_examples(result: EvalResult, out: Path) -> dict[str, Any]:
    """Write the example track's decoded audio per checkpoint as 16-bit WAV.

    Files of one checkpoint share one scale, 1/peak when a remix exceeds full scale (no
    clipping, levels stay comparable within a checkpoint); the scale is recorded.
    """
    seconds = result.config.example_seconds
    info: dict[str, Any] = {"track": result.example_track, "seconds": seconds, "scale": {}, "files": []}
    for m in result.models:
        sr = m.model.config.sample_rate
        audio = {
            k: x
            for k, x in result.example_audio.get(m.name, {}).items()
            if k in _EXAMPLE_FILES or k.startswith(_EXAMPLE_PREFIXES)
        }
        if not audio:
            continue
        peak = max(float(np.abs(x).max()) for x in audio.values())
        scale = 1.0 / peak if peak > 1.0 else 1.0
        folder = out / "examples" / _safe(m.name)
        folder.mkdir(parents=True, exist_ok=True)
        for key, x in audio.items():
            save_audio(folder / f"{key}.wav", scale * x[None], sr, subtype="PCM_16")
            info["files"].append((folder / f"{key}.wav").relative_to(out).as_posix())
        info["scale"][m.name] = scale
    return info


def write_report(result: EvalResult, out_dir: str | Path, stem: str = "vocals") -> dict[str, str]:
    """Write report.json, report.md, the plots and the example audio into ``out_dir``.

    Args:
        result: what ``evaluate`` returned.
        out_dir: the report folder (created; existing report files are replaced).
        stem: the stem shown in the spectrogram figure.

    Returns:
        The written files by kind, as paths relative to ``out_dir`` (``examples``: the folder).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {
        "json": "report.json",
        "markdown": "report.md",
        "separation_plot": "separation_si_sdr.png",
    }
    plot_separation(result, out / files["separation_plot"])
    data: dict[str, Any] = result.to_dict()
    if result.example_audio:
        files["spectrograms"] = "spectrograms.png"
        plot_spectrograms(result, out / files["spectrograms"], stem)
        files["examples"] = "examples/"
        data["example"] = _write_examples(result, out)
    files["html"] = "report.html"
    data["files"] = files
    (out / "report.json").write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
    (out / "report.md").write_text(markdown_report(result, files, data.get("example")))
    _listening_page(result, out / files["html"], files, data.get("example"))
    return files


def _listening_page(
    result: EvalResult, path: Path, files: dict[str, str], example: dict[str, Any] | None
) -> None:
    """``report.html``: Tables 1 and 2, the figures, and the example track's audio side by side."""
    h1, h2 = _headers()
    tables = [
        ListeningTable(
            f"Table 1: additivity and separation ({len(result.stem_tracks)} stems tracks)",
            ["Model", *h1],
            [[name, *cells] for name, cells in _table1_rows(result)],
        ),
        ListeningTable(
            f"Table 2: reconstruction and homogeneity ({len(result.music_tracks)} tracks)",
            ["Model", *h2],
            [[name, *cells] for name, cells in _table2_rows(result)],
        ),
        *(ListeningTable(t.caption, t.headers, t.rows) for t in control_tables(result)),
    ]
    figures = [files[k] for k in ("separation_plot", "spectrograms") if k in files]
    examples = []
    columns = ["input", "reconstruction Dec(Enc(x))", "latent-domain edit", "audio-domain edit"]
    for m in result.models:
        folder = f"examples/{_safe(m.name)}"
        have = {
            f.rsplit("/", 1)[1][: -len(".wav")]
            for f in (example or {}).get("files", [])
            if f.startswith(folder + "/")
        }
        if not have:
            continue
        rows = {
            "mixture (latent edit: Dec(Σ Enc(sᵢ)); audio edit: Σ sᵢ)": {
                columns[0]: f"{folder}/mixture.wav",
                columns[1]: f"{folder}/autoencoded_mixture.wav",
                columns[2]: f"{folder}/remix_latent_sum.wav",
                columns[3]: f"{folder}/mixture.wav",
            }
        }
        for stem in STEMS:
            rows[f"{stem} (latent edit: separation Enc(mix) − Enc(mix − s); audio edit: s)"] = {
                columns[0]: f"{folder}/stem_{stem}.wav",
                columns[1]: f"{folder}/autoencoded_{stem}.wav",
                columns[2]: f"{folder}/separated_{stem}.wav",
                columns[3]: f"{folder}/stem_{stem}.wav",
            }
        rows = {
            label: {c: f for c, f in cells.items() if f.rsplit("/", 1)[1][:-4] in have}
            for label, cells in rows.items()
        }
        scale = (example or {}).get("scale", {}).get(m.name, 1.0)
        note = f"{result.example_track}" + (
            f", every file scaled by {scale:.3g} (no clipping)" if scale != 1.0 else ""
        )
        examples.append(ListeningExample(f"{m.name}: example track", columns, rows, note=note))
    intro = [
        f"lincae eval of {', '.join(m.name for m in result.models)} on {result.stems_dir}.",
        "Markdown report: report.md; every number: report.json.",
        *(line.removeprefix("- ").replace("**", "") for line in noise_lines(result)),
        controls_intro(result).replace("**", ""),
    ]
    write_listening_page(
        path,
        "lincae eval: the paper's Tables 1 and 2",
        intro=intro,
        tables=tables,
        figures=figures,
        examples=examples,
    )
