"""What ``lincae eval`` measured (:class:`EvalResult`) and its JSON form (``report.json``).

The protocol's tables (``table1``: additivity, separation and reconstruction of the stems'
mixtures; ``table2``: reconstruction and homogeneity) per checkpoint and track, the controls of
:mod:`.controls` (do nothing, decode-then-subtract, shared and independent decode noise), and
their aggregates over tracks. :mod:`.runner` fills it, :mod:`.report` writes it out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lincae_core._version import __version__
from lincae_core.evaluation.controls import DO_NOTHING, ESTIMATES, NOISE_SETTINGS, REFERENCES, summarize
from lincae_core.evaluation.metrics import mss_resolutions
from lincae_core.evaluation.protocol import STEMS, EvalConfig
from lincae_core.evaluation.sdr import mean_over_tracks, median_over_tracks
from lincae_core.linearity import THRESHOLDS, linearity_verdict
from lincae_core.nn.model import LinCAE

__all__ = ["LINEARITY_KEYS", "MIXTURE_NOTE", "EvalResult", "NamedModel"]

LINEARITY_KEYS = ("enc_hom_err", "dec_hom_mss", "dec_hom_snr", "add_enc_err", "add_dec_mss", "add_dec_snr")
_MEDIAN_KEY = re.compile(r"_sdr_v4_|_silent_frames_|_sdr_frames$")
MIXTURE_NOTE = "mix = sum of the 4 stems (bass, drums, other, vocals) as loaded; mixture.wav is not used"


@dataclass(frozen=True)
class NamedModel:
    """A model to evaluate, with the name of its row in the report and where it came from."""

    name: str
    model: LinCAE
    source: str = "default"

    def describe(self) -> dict[str, Any]:
        """Return the JSON description of the checkpoint (id, preset, rate, provenance)."""
        card = dict(self.model.card)
        return {
            "name": self.name,
            "checkpoint": self.source,
            "model_id": self.model.model_id,
            "preset": self.model.config.name,
            "sample_rate": self.model.config.sample_rate,
            "untrained": bool(card.get("untrained", False)),
            "steps": (card.get("training") or {}).get("steps"),
            "recommended_steps": self.model.recommended_steps,
            "training": card.get("training"),
        }


@dataclass
class EvalResult:
    """Everything an evaluation measured; ``to_dict`` is ``report.json``."""

    config: EvalConfig
    models: list[NamedModel]
    stems_dir: str
    music_dir: str | None
    stem_tracks: list[str]
    music_tracks: list[str]
    skipped: list[dict[str, str]]
    table1: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # model -> track -> metric
    table2: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    example_track: str | None = None
    example_audio: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model -> name -> [T]
    # the controls of .controls: model -> track -> "<noise>/<estimate>/<stem>/<metric>" (Table 1's
    # tracks) or "<noise>/decoder/<metric>" (Table 2's), and the model-free "do nothing" per rate
    controls1: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    controls2: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    do_nothing: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)  # rate -> track

    def means(self, table: str, name: str) -> dict[str, float]:
        """Mean over tracks of every metric of one model in ``table1`` or ``table2``.

        The BSSEval v4 SDRs and the frame counts are left out: they aggregate by the median
        (:meth:`separation_sdr`).
        """
        rows = list(getattr(self, table).get(name, {}).values())
        keys = [k for k in (rows[0] if rows else {}) if k != "gain" and not _MEDIAN_KEY.search(k)]
        return {k: float(np.mean([r[k] for r in rows])) for k in keys}

    def separation_sdr(self, name: str) -> dict[str, dict[str, dict[str, float | int | None]]]:
        """The separation SDRs of one model by the community's conventions (:mod:`.sdr`).

        Returns:
            ``stem -> reference ("ae": Dec(Enc(sᵢ)), "true": sᵢ) ->`` ``bsseval_v4`` (median over
            tracks of the median over 1-s frames), ``mdx_global`` (mean over tracks),
            ``silent_frames`` (frames skipped, all tracks) and ``frames``.
        """
        rows = list(self.table1.get(name, {}).values())
        out: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for stem in STEMS:
            p = f"sep_{stem}_"
            out[stem] = {
                ref: {
                    "bsseval_v4": median_over_tracks(r[f"{p}sdr_v4_{ref}"] for r in rows),
                    "mdx_global": mean_over_tracks(r[f"{p}sdr_global_{ref}"] for r in rows),
                    "silent_frames": int(sum(r[f"{p}silent_frames_{ref}"] for r in rows)),
                    "frames": int(sum(r[f"{p}sdr_frames"] for r in rows)),
                }
                for ref in ("ae", "true")
            }
        return out

    def linearity(self, name: str) -> dict[str, Any]:
        """The linearity figures of one model (means of Tables 1-2) and their verdict (:mod:`..linearity`)."""
        t1, t2 = self.means("table1", name), self.means("table2", name)
        figures = {k: v for k, v in {**t1, **t2}.items() if k in LINEARITY_KEYS}
        return {
            "figures": figures,
            "verdict": linearity_verdict(name, figures),
            "thresholds": {k: t.limit for k, t in THRESHOLDS.items()},
        }

    def controls(self, name: str) -> dict[str, Any]:
        """The controls of one model (:mod:`.controls`), aggregated over tracks.

        Returns:
            ``noise ("shared", and "independent" unless config.noise is "shared") ->``
            ``"decoder" -> {add_dec_mss, add_dec_snr, dec_hom_mss, dec_hom_snr}`` and
            ``estimate (of controls.ESTIMATES) -> stem -> reference ("ae", "true") ->``
            ``{si_sdr, mss, bsseval_v4, mdx_global, silent_frames}`` (and ``frames``
            per stem); the v4 SDR is the median over tracks, the rest the mean.
        """
        t1 = summarize(list(self.controls1.get(name, {}).values()))
        t2 = summarize(list(self.controls2.get(name, {}).values()))
        out: dict[str, Any] = {}
        for noise in sorted(set(t1) | set(t2), key=("shared", "independent").index):
            one, two = t1.get(noise, {}), t2.get(noise, {})
            out[noise] = {"decoder": {**one.get("decoder", {}), **two.get("decoder", {})}}
            out[noise].update({k: v for k, v in one.items() if k != "decoder"})
        return out

    def do_nothing_summary(self) -> dict[str, dict[str, Any]]:
        """The model-free control per sample rate: ``stem -> "true" -> {si_sdr, mss, bsseval_v4,
        mdx_global, silent_frames}`` and ``frames``, the mixture as the estimate of the stem."""
        return {
            str(rate): summarize(list(rows.values()))["do_nothing"]
            for rate, rows in sorted(self.do_nothing.items())
            if rows
        }

    def protocol(self) -> dict[str, Any]:
        """The protocol settings, as recorded in the report."""
        rates = sorted({m.model.config.sample_rate for m in self.models})
        return {
            **self.config.to_dict(),
            "gain_distribution": self.config.gains.to_dict(),
            "gain_seed": self.config.seed,
            "sample_rates": rates,
            "chunk_samples": {str(r): list(self.config.chunk_samples(r)) for r in rates},
            "channels": "mono",
            "mixture": MIXTURE_NOTE,
            "music_source": self.music_dir or "the stems folder's mixtures (sum of the 4 stems)",
            "decode_noise": "shared: drawn per (seed, track, chunk), every decode of a track uses the "
            "same noise (Tables 1-2, separation SDR, linearity verdict); the controls report each "
            "setting of decode_noise_settings",
            "decode_noise_settings": {
                k: v for k, v in NOISE_SETTINGS.items() if self.config.noise == "both" or k == "shared"
            },
            "separation_estimates": ESTIMATES,
            "do_nothing": DO_NOTHING,
            "mss": {str(r): [list(t) for t in mss_resolutions(r)] for r in rates},
            "kad": "not computed (needs a CLAP model; out of scope offline)",
            "separation_sdr": {
                "bsseval_v4": "museval v4 (images) SDR per 1-s frame, median over frames, median over "
                "tracks; a frame with a silent reference or estimate is skipped and counted",
                "mdx_global": "10·log10((Σs² + 1e-7) / (Σ(s − ŝ)² + 1e-7)) per track, mean over tracks",
                "references": REFERENCES,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report: settings, data, and per checkpoint every number and its mean."""
        checkpoints = []
        for m in self.models:
            entry = m.describe()
            for table in ("table1", "table2"):
                tracks = getattr(self, table).get(m.name, {})
                entry[table] = {"mean": self.means(table, m.name), "tracks": tracks}
            entry["separation_sdr"] = self.separation_sdr(m.name)
            entry["linearity"] = self.linearity(m.name)
            entry["controls"] = {
                **self.controls(m.name),
                "tracks": {
                    "table1": self.controls1.get(m.name, {}),
                    "table2": self.controls2.get(m.name, {}),
                },
            }
            checkpoints.append(entry)
        return {
            "format": "lincae-eval-report",
            "format_version": 1,
            "lincae_version": __version__,
            "protocol": self.protocol(),
            "data": {
                "stems_dir": self.stems_dir,
                "music_dir": self.music_dir,
                "stem_tracks": self.stem_tracks,
                "music_tracks": self.music_tracks,
                "skipped": self.skipped,
                "example_track": self.example_track,
            },
            "do_nothing": {
                "estimate": DO_NOTHING,
                "reference": REFERENCES["true"],
                "sample_rates": {
                    rate: {"summary": summary, "tracks": self.do_nothing[int(rate)]}
                    for rate, summary in self.do_nothing_summary().items()
                },
            },
            "checkpoints": checkpoints,
        }
