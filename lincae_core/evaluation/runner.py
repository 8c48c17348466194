"""``lincae eval``: the paper's evaluation (arXiv:2510.23530 Sec. 4) of checkpoints side by side.

Composes :mod:`lincae_core.evaluation.protocol` (chunking, seeded decodes, per-track scores) over a
MUSDB18-HQ-style stems folder (``<track>/{bass,drums,other,vocals}.wav``; Table 1: additivity,
separation, reconstruction of ``mix = Σ stems``) and a folder of music (Table 2: reconstruction
and homogeneity; the stems' mixtures when no music folder is given). Audio is loaded mono at each
model's sample rate. Each track is also scored by the controls of :mod:`.controls` (the mixture
as the estimate, decode-then-subtract, independent decode noise), whose extra decodes share the
protocol's passes. The result (:mod:`.result`) holds every number per track and the mean over
tracks, per checkpoint, plus the protocol settings; :mod:`lincae_core.evaluation.report` writes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lincae_core.errors import AudioError, ConfigError, LincaeError
from lincae_core.evaluation.batched import run_tasks
from lincae_core.evaluation.controls import controls_music_task, controls_stems_task, do_nothing_scores
from lincae_core.evaluation.corpus import (
    StemTrack,
    find_music_files,
    find_stem_tracks,
    load_stems,
    load_track,
)
from lincae_core.evaluation.protocol import ChunkCodec, EvalConfig, run_task
from lincae_core.evaluation.result import EvalResult, NamedModel
from lincae_core.models import load_model

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
    for (track, _), stems_by_rate in zip(ok, loaded, strict=True):  # the model-free control
        for rate, stems in stems_by_rate.items():
            result.do_nothing.setdefault(rate, {})[track.name] = do_nothing_scores(stems, rate)
    independent = result.config.noise == "both"
    for m in result.models:
        codec = codecs[m.name]
        tasks: list[Any] = []
        for (track, gain), stems_by_rate in zip(ok, loaded, strict=True):
            stems = stems_by_rate[codec.sample_rate]
            keep = result.example_track is None or result.example_track == track.name
            if keep:
                result.example_track = track.name
            name = f"stems/{track.name}"
            tasks.append(controls_stems_task(codec.sample_rate, stems, name, keep, independent))
            if gain is not None:
                mix = torch.stack(stems).sum(0)
                name = f"music/{track.name}"
                tasks.append(controls_music_task(codec.sample_rate, mix, gain, name, independent))
        out = run_tasks(codec, tasks, jobs) if batched else [run_task(codec, t) for t in tasks]
        rows = iter(out)
        for track, gain in ok:
            scores, controls, audio = next(rows)
            result.table1.setdefault(m.name, {})[track.name] = scores
            result.controls1.setdefault(m.name, {})[track.name] = controls
            if audio:
                seconds = result.config.example_seconds
                limit = None if seconds is None else round(seconds * codec.sample_rate)
                result.example_audio[m.name] = {k: v[:limit].numpy() for k, v in audio.items()}
            if gain is not None:
                row, controls = next(rows)
                result.table2.setdefault(m.name, {})[track.name] = row
                result.controls2.setdefault(m.name, {})[track.name] = controls


def _drop_stems_track(result: EvalResult, name: str, reason: str) -> None:
    """Forget a stems track that failed to load, recording why."""
    log.warning("skipping %s: %s", name, reason)
    result.skipped.append({"track": name, "reason": reason})
    result.stem_tracks.remove(name)
    if result.music_dir is None:
        result.music_tracks.remove(name)
    for table in (result.table1, result.table2, result.controls1, result.controls2, result.do_nothing):
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
    independent = result.config.noise == "both"
    for m in result.models:
        codec = codecs[m.name]
        tasks = [
            controls_music_task(codec.sample_rate, x[codec.sample_rate], gain, f"music/{key}", independent)
            for (key, gain), x in zip(ok, loaded, strict=True)
        ]
        out = run_tasks(codec, tasks, jobs) if batched else [run_task(codec, t) for t in tasks]
        for (key, _), (row, controls) in zip(ok, out, strict=True):
            result.table2.setdefault(m.name, {})[key] = row
            result.controls2.setdefault(m.name, {})[key] = controls


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
        config: protocol settings (default ``EvalConfig()``: 2-s chunks, 0.5-s overlap, 1 step;
            ``noise="both"``: the controls under shared and independent decode noise).
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
