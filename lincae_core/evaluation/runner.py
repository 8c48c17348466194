"""``lincae eval``: the paper's evaluation (arXiv:2510.23530 Sec. 4) of checkpoints side by side.

Composes :mod:`lincae_core.evaluation.protocol` (chunking, seeded decodes, per-track scores) over a
MUSDB18-HQ-style stems folder (``<track>/{bass,drums,other,vocals}.wav``; Table 1: additivity,
separation, reconstruction of ``mix = Σ stems``) and a folder of music (Table 2: reconstruction
and homogeneity; the stems' mixtures when no music folder is given). Audio is loaded mono at each
model's sample rate. The result holds every number per track and the mean over tracks, per
checkpoint, plus the protocol settings; :mod:`lincae_core.evaluation.report` writes it out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lincae_core._version import __version__
from lincae_core.errors import AudioError, ConfigError, LincaeError
from lincae_core.evaluation.batched import run_tasks
from lincae_core.evaluation.corpus import (
    StemTrack,
    find_music_files,
    find_stem_tracks,
    load_stems,
    load_track,
)
from lincae_core.evaluation.metrics import mss_resolutions
from lincae_core.evaluation.protocol import (
    STEMS,
    ChunkCodec,
    EvalConfig,
    music_task,
    run_task,
    stems_task,
)
from lincae_core.evaluation.sdr import mean_over_tracks, median_over_tracks
from lincae_core.linearity import THRESHOLDS, linearity_verdict
from lincae_core.models import load_model
from lincae_core.nn.model import LinCAE

__all__ = [
    "EvalResult",
    "NamedModel",
    "StemTrack",
    "evaluate",
    "find_music_files",
    "find_stem_tracks",
    "load_named_models",
    "load_stems",
    "load_track",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
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
            "decode_noise": "drawn per (seed, track, chunk): every decode of a track uses the same noise",
            "mss": {str(r): [list(t) for t in mss_resolutions(r)] for r in rates},
            "kad": "not computed (needs a CLAP model; out of scope offline)",
            "separation_sdr": {
                "bsseval_v4": "museval v4 (images) SDR per 1-s frame, median over frames, median over "
                "tracks; a frame with a silent reference or estimate is skipped and counted",
                "mdx_global": "10·log10((Σs² + 1e-7) / (Σ(s − ŝ)² + 1e-7)) per track, mean over tracks",
                "references": {"ae": "the autoencoded stem Dec(Enc(sᵢ))", "true": "the stem sᵢ itself"},
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
            "checkpoints": checkpoints,
        }


def load_named_models(
    checkpoints: Sequence[str], names: Sequence[str] = (), device: str = "cpu"
) -> list[NamedModel]:
    """Load checkpoints to compare; ``"default"`` is the embedded model.

    Args:
        checkpoints: checkpoint directories (or ``"default"``); none means the default only.
        names: row names, in order (default: the checkpoint directory names).
        device: ``auto``, ``cpu`` or ``cuda[:i]`` (:func:`lincae_core.device.resolve_device`).

    Returns:
        One named model per checkpoint; duplicate names get a ``-2``, ``-3`` suffix.
    """
    specs = list(checkpoints) or ["default"]
    if len(names) > len(specs):
        raise ConfigError(f"Expected at most one name per checkpoint ({len(specs)}). Got {len(names)}.")
    out: list[NamedModel] = []
    used: set[str] = set()
    for i, spec in enumerate(specs):
        path = None if spec == "default" else Path(spec)
        base = names[i] if i < len(names) else ("default" if path is None else path.resolve().name)
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        source = "default" if path is None else str(path)
        out.append(NamedModel(name, load_model(path, device=device), source))
    return out


def _score_stems(
    result: EvalResult,
    tracks: Sequence[StemTrack],
    codecs: dict[str, ChunkCodec],
    gains: Sequence[float | None],
    jobs: int | None,
    batched: bool,
) -> None:
    """Score stems tracks with every model (and Table 2 on their mix when there is no music).

    ``batched``: the tracks' chunks and all their decodes share forward passes
    (:mod:`.batched`); else track by track (the per-track protocol, as before).
    """
    loaded: list[dict[int, list[torch.Tensor]]] = []
    ok: list[tuple[StemTrack, float | None]] = []
    for track, gain in zip(tracks, gains, strict=True):
        try:
            loaded.append(
                {
                    rate: load_stems(track, rate, result.config.max_seconds)
                    for rate in sorted({c.sample_rate for c in codecs.values()})
                }
            )
            ok.append((track, gain))
        except AudioError as exc:
            _drop_stems_track(result, track.name, str(exc))
    for m in result.models:
        codec = codecs[m.name]
        tasks: list[Any] = []
        for (track, gain), stems_by_rate in zip(ok, loaded, strict=True):
            stems = stems_by_rate[codec.sample_rate]
            keep = result.example_track is None or result.example_track == track.name
            if keep:
                result.example_track = track.name
            tasks.append(stems_task(codec.sample_rate, stems, f"stems/{track.name}", keep_audio=keep))
            if gain is not None:
                mix = torch.stack(stems).sum(0)
                tasks.append(music_task(codec.sample_rate, mix, gain, f"music/{track.name}"))
        out = run_tasks(codec, tasks, jobs) if batched else [run_task(codec, t) for t in tasks]
        rows = iter(out)
        for track, gain in ok:
            scores, audio = next(rows)
            result.table1.setdefault(m.name, {})[track.name] = scores
            if audio:
                seconds = result.config.example_seconds
                limit = None if seconds is None else round(seconds * codec.sample_rate)
                result.example_audio[m.name] = {k: v[:limit].numpy() for k, v in audio.items()}
            if gain is not None:
                result.table2.setdefault(m.name, {})[track.name] = next(rows)


def _drop_stems_track(result: EvalResult, name: str, reason: str) -> None:
    """Forget a stems track that failed to load, recording why."""
    log.warning("skipping %s: %s", name, reason)
    result.skipped.append({"track": name, "reason": reason})
    result.stem_tracks.remove(name)
    if result.music_dir is None:
        result.music_tracks.remove(name)
    for table in (result.table1, result.table2):
        for rows in table.values():
            rows.pop(name, None)
    if result.example_track == name:
        result.example_track, result.example_audio = None, {}


def _score_music(
    result: EvalResult,
    music: Sequence[tuple[str, Path]],
    gains: Sequence[float],
    codecs: dict[str, ChunkCodec],
    jobs: int | None,
    batched: bool,
) -> None:
    """Score music files with every model (Table 2)."""
    loaded: list[dict[int, torch.Tensor]] = []
    ok: list[tuple[str, float]] = []
    for (key, path), gain in zip(music, gains, strict=True):
        try:
            rates = sorted({c.sample_rate for c in codecs.values()})
            loaded.append({rate: load_track(path, rate, result.config.max_seconds) for rate in rates})
            ok.append((key, gain))
        except AudioError as exc:
            log.warning("skipping music file %s: %s", path, exc)
            result.skipped.append({"track": f"music/{key}", "reason": str(exc)})
            result.music_tracks.remove(key)
    for m in result.models:
        codec = codecs[m.name]
        tasks = [
            music_task(codec.sample_rate, x[codec.sample_rate], gain, f"music/{key}")
            for (key, gain), x in zip(ok, loaded, strict=True)
        ]
        out = run_tasks(codec, tasks, jobs) if batched else [run_task(codec, t) for t in tasks]
        for (key, _), row in zip(ok, out, strict=True):
            result.table2.setdefault(m.name, {})[key] = row


def evaluate(
    models: Sequence[NamedModel],
    stems_dir: str | Path,
    music_dir: str | Path | None = None,
    config: EvalConfig | None = None,
    progress: Progress | None = None,
    jobs: int | None = None,
    batched: bool = True,
    group: int = 8,
) -> EvalResult:
    """Run the evaluation protocol of arXiv:2510.23530 Sec. 4 for several models side by side.

    Args:
        models: the models to compare (one report row each).
        stems_dir: a MUSDB18-HQ-style folder (Table 1).
        music_dir: a folder of music files (Table 2); ``None`` uses the stems' mixtures.
        config: protocol settings (default ``EvalConfig()``: 2-s chunks, 0.5-s overlap, 1 step).
        progress: called as ``progress(done, total, label)`` after each group of tracks.
        jobs: forward passes at once (default: one per core on the CPU); never changes a number.
        batched: score ``group`` tracks at a time with all their chunks and decodes in shared
            passes (:mod:`.batched`; the scores equal the per-track protocol's within float32
            rounding); ``False``: track by track, the per-track protocol.
        group: tracks scored together (memory: their audio and decodes).

    Returns:
        The result; the first stems track is kept as the example (its audio is in memory).

    Raises:
        ConfigError: If a folder holds no usable track or the settings are invalid.
    """
    config = config or EvalConfig()
    if not models:
        raise ConfigError("Expected at least one model to evaluate. Got none.")
    tracks, skipped = find_stem_tracks(stems_dir)
    tracks = tracks[: config.max_tracks]
    music = find_music_files(music_dir, config.max_tracks) if music_dir is not None else []
    names = [k for k, _ in music] if music else [t.name for t in tracks]
    gains = config.gains.sample(np.random.default_rng(config.seed), len(names))
    result = EvalResult(
        config,
        list(models),
        str(stems_dir),
        None if music_dir is None else str(music_dir),
        [t.name for t in tracks],
        names,
        skipped,
    )
    codecs = {m.name: ChunkCodec(m.model, config) for m in models}
    total, done = len(tracks) + len(music), 0
    for i in range(0, len(tracks), group):
        part = tracks[i : i + group]
        _score_stems(
            result, part, codecs, [None] * len(part) if music else gains[i : i + group], jobs, batched
        )
        done += len(part)
        if progress:
            progress(done, total, f"stems/{part[-1].name}")
    for i in range(0, len(music), group):
        part_music = music[i : i + group]
        _score_music(result, part_music, gains[i : i + group], codecs, jobs, batched)
        done += len(part_music)
        if progress:
            progress(done, total, f"music/{part_music[-1][0]}")
    if not result.stem_tracks or not result.music_tracks:
        raise LincaeError("No track could be evaluated: " + "; ".join(d["reason"] for d in result.skipped))
    return result
