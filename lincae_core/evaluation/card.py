"""``lincae card``: measure a checkpoint with a short evaluation and write it into its model card.

The measurement is the protocol of :mod:`lincae_core.evaluation.protocol` (2-s chunks, 0.5-s
overlap, seeded decodes, the gain distribution of ``lincae eval``) on the first few tracks of a
MUSDB18-HQ-style folder, each cut to its first seconds. It records, under ``"measured"``
(:data:`CARD_VERSION`):

- ``reconstruction``: MSS and SNR of ``Dec(Enc(x))`` against ``x`` at 1..4 decoding steps, and the
  card's top-level ``recommended_steps`` (best MSS; a tie goes to fewer steps);
- ``linearity`` (at 1 step, the paper's protocol): encoder homogeneity and additivity errors,
  decoder homogeneity and additivity MSS and SNR, the keys of ``lincae eval``'s tables; the
  homogeneity figures are the mean over every gain of ``lincae eval``'s default choice set
  {0.25, 0.5, 0.75, 1.1} on every track (the expectation of eval's one random gain per track),
  also given per gain (``homogeneity_by_gain``);
- ``separation``: SI-SDR per stem of ``Dec(Enc(mix) − Enc(mix − sᵢ))`` against ``Dec(Enc(sᵢ))``;
- ``origin``: ``‖Enc(0)‖`` (one chunk of digital silence) relative to the mean chunk norm of the
  music latents (a linear encoder has ``Enc(0) = 0``).

Writing the card rewrites ``model_card.json`` only (atomically); the weights, the config and so
the model id do not change, and the checkpoint is loaded again with ``verify=True`` afterwards.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lincae_core._version import __version__
from lincae_core.checkpoint import DEFAULT_MODEL_DIR, load_checkpoint_info
from lincae_core.config import EvalConfig
from lincae_core.errors import AudioError, CheckpointError, LincaeError, OutputExistsError
from lincae_core.evaluation import metrics
from lincae_core.evaluation.batched import run_tasks
from lincae_core.evaluation.corpus import find_music_files, find_stem_tracks, load_stems, load_track
from lincae_core.evaluation.protocol import (
    STEMS,
    ChunkCodec,
    Decode,
    Encode,
    Task,
    music_task,
    run_task,
    stems_task,
)
from lincae_core.evaluation.result import LINEARITY_KEYS
from lincae_core.hub import resolve_if_released
from lincae_core.models import load_model
from lincae_core.nn.model import LinCAE
from lincae_core.publish import building_dir, write_text_atomic

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # lincae_core: lincae never writes into it
__all__ = ["CARD_VERSION", "STEP_COUNTS", "measure_checkpoint", "measure_model", "recommended_steps"]

log = logging.getLogger(__name__)

CARD_VERSION = 1
STEP_COUNTS: tuple[int, ...] = (1, 2, 3, 4)
Progress = Callable[[int, int, str], None]


def recommended_steps(reconstruction: list[dict[str, float]], decimals: int = 2) -> int:
    """The step count with the lowest reconstruction MSS; a tie goes to the fewer steps.

    MSS values are compared at ``decimals`` places (the precision the card is read at), so that a
    difference below the measurement's noise does not cost extra decoding steps.
    """
    best = min(reconstruction, key=lambda r: (round(r["mss"], decimals), r["steps"]))
    return int(best["steps"])


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _reconstruction(sr: int, x: torch.Tensor, key: str) -> Task[list[dict[str, float]]]:
    """Recon MSS and SNR of one track at every count of :data:`STEP_COUNTS` (one encode)."""
    z = yield Encode(x[None])
    decs = yield tuple(Decode(z, key, x.shape[-1], steps) for steps in STEP_COUNTS)
    rows = []
    for steps, dec in zip(STEP_COUNTS, decs, strict=True):
        scores = metrics.reconstruction_scores(dec[0], x, sr)
        rows.append({"steps": steps, **{k: float(v[0]) for k, v in scores.items()}})
    return rows


def _latents(x: torch.Tensor) -> Task[torch.Tensor]:
    """The chunk latents ``[N, D, Z]`` of one track."""
    z = yield Encode(x[None])
    return z[0]


def _origin(codec: ChunkCodec, music_latents: list[torch.Tensor]) -> dict[str, float]:
    """``‖Enc(0)‖`` of one silent chunk against the mean chunk norm of the music latents."""
    z0 = codec.encode(torch.zeros(1, codec.chunk))[0, 0]  # (D, Z)
    norms = torch.cat([z.flatten(1).norm(dim=1) for z in music_latents])  # one per chunk
    zero, music = float(z0.norm()), float(norms.mean())
    return {"enc0_norm": zero, "music_norm": music, "ratio": zero / music if music > 0 else float("nan")}


def measure_model(
    model: LinCAE,
    stems_dir: str | Path,
    music_dir: str | Path | None = None,
    max_tracks: int = 4,
    max_seconds: float = 10.0,
    seed: int = 0,
    progress: Progress | None = None,
    jobs: int | None = None,
    batched: bool = True,
) -> dict[str, Any]:
    """Measure one model with a short version of ``lincae eval`` (see the module docstring).

    Args:
        model: the model (its ``model_id`` is recorded).
        stems_dir: a MUSDB18-HQ-style folder (additivity, separation; homogeneity and
            reconstruction too when there is no ``music_dir``).
        music_dir: a folder of music files for reconstruction, homogeneity and the origin.
        max_tracks: tracks used from each folder (the first ones by name).
        max_seconds: each track is cut to its first seconds.
        seed: seed of the decode noise.
        progress: called as ``progress(done, total, label)`` after each track is loaded.
        jobs: forward passes at once (default: one per core on the CPU); never changes a number.
        batched: every track's chunks, gains and step counts in shared passes (duplicate chunks
            computed once; :mod:`.batched`): the figures of the per-track protocol
            (``batched=False``) within float32 rounding.

    Returns:
        The ``"measured"`` block of the model card.
    """
    config = EvalConfig(max_tracks=max_tracks, max_seconds=max_seconds, seed=seed, example_seconds=None)
    sr = model.config.sample_rate
    tracks, skipped = find_stem_tracks(stems_dir)
    tracks = tracks[:max_tracks]
    music = find_music_files(music_dir, max_tracks) if music_dir is not None else []
    gains = config.gains.values  # the choice set of lincae eval's default gain distribution
    codec = ChunkCodec(model, config)
    tasks: list[Any] = []
    kinds: list[str] = []
    used, music_used, total = [], [], len(tracks) + len(music)

    def music_track(x: torch.Tensor, key: str) -> None:
        for gain in gains:  # every gain on every track: the expectation of eval's random draw
            tasks.append(music_task(sr, x, gain, f"music/{key}"))
            kinds.append("music")
        tasks.extend([_reconstruction(sr, x, f"music/{key}"), _latents(x)])
        kinds.extend(["recon", "latents"])
        music_used.append(key)

    for i, track in enumerate(tracks):
        try:
            stems = load_stems(track, sr, max_seconds)
        except AudioError as exc:
            log.warning("skipping %s: %s", track.name, exc)
            skipped.append({"track": track.name, "reason": str(exc)})
            continue
        tasks.append(stems_task(sr, stems, f"stems/{track.name}"))
        kinds.append("stems")
        used.append(track.name)
        if not music:
            music_track(torch.stack(stems).sum(0), track.name)
        if progress:
            progress(i + 1, total, f"stems/{track.name}")
    for j, (key, path) in enumerate(music):
        try:
            music_track(load_track(path, sr, max_seconds), key)
        except AudioError as exc:
            log.warning("skipping music file %s: %s", path, exc)
            skipped.append({"track": f"music/{key}", "reason": str(exc)})
        if progress:
            progress(len(tracks) + j + 1, total, f"music/{key}")
    out = run_tasks(codec, tasks, jobs) if batched else [run_task(codec, t) for t in tasks]
    stem_rows = [r[0] for r, k in zip(out, kinds, strict=True) if k == "stems"]
    music_rows: list[dict[str, float]] = [r for r, k in zip(out, kinds, strict=True) if k == "music"]
    recon: list[list[dict[str, float]]] = [r for r, k in zip(out, kinds, strict=True) if k == "recon"]
    latents: list[torch.Tensor] = [r for r, k in zip(out, kinds, strict=True) if k == "latents"]
    if not stem_rows or not music_rows:
        raise LincaeError("No track could be measured: " + "; ".join(d["reason"] for d in skipped))

    reconstruction = [
        {"steps": steps, **{m: _mean([r[k] for r in recon], m) for m in ("mss", "snr")}}
        for k, steps in enumerate(STEP_COUNTS)
    ]
    rows = {"enc_hom_err": music_rows, "dec_hom_mss": music_rows, "dec_hom_snr": music_rows}
    linearity = {key: _mean(rows.get(key, stem_rows), key) for key in LINEARITY_KEYS}
    si_sdr = {s: _mean(stem_rows, f"sep_{s}_si_sdr") for s in STEMS}
    return {
        "version": CARD_VERSION,
        "model_id": model.model_id,
        "lincae_version": __version__,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "data": {
            "stems_dir": str(stems_dir),
            "stem_tracks": used,
            "music_dir": None if music_dir is None else str(music_dir),
            "music_tracks": music_used,
            "music_source": "music_dir" if music else "the stems' mixtures (sum of the 4 stems)",
            "max_tracks": max_tracks,
            "max_seconds": max_seconds,
            "skipped": skipped,
        },
        "protocol": {
            "chunk_s": config.chunk_s,
            "overlap_s": config.overlap_s,
            "seed": seed,
            "linearity_steps": config.steps,
            "gains": list(gains),
            "sample_rate": sr,
            "homogeneity": "every gain on every track; the figures are means over tracks and gains",
            "reference": "lincae eval (docs/evaluation.md), short: first tracks, first seconds",
        },
        "reconstruction": reconstruction,
        "recommended_steps": recommended_steps(reconstruction),
        "linearity": linearity,
        "homogeneity_by_gain": {
            f"{g:g}": {k: _mean([r for r in music_rows if r["gain"] == g], k) for k in LINEARITY_KEYS[:3]}
            for g in gains
        },
        "separation": {"si_sdr": {**si_sdr, "mean": float(np.mean(list(si_sdr.values())))}},
        "origin": _origin(codec, latents),
    }


def _card_target(path: Path, card: dict[str, Any], out: str | Path | None, overwrite: bool) -> Path:
    """Where the measured card goes: ``out`` (a copy), or the checkpoint itself when allowed."""
    if out is not None:
        target = Path(out)
        if target.resolve() == path.resolve():
            return _card_target(path, card, None, overwrite)
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise OutputExistsError(target, "it")
        return target
    if path.resolve() == DEFAULT_MODEL_DIR.resolve() or path.resolve().is_relative_to(PACKAGE_DIR):
        raise CheckpointError(
            f"{path} is inside the installed lincae package: give -o DIR to write a measured copy "
            "of the checkpoint there (lincae never rewrites its own files)"
        )
    if card.get("measured") and not overwrite:
        data = card["measured"].get("data", {})
        raise CheckpointError(
            f"{path / 'model_card.json'} holds measurements already ({len(data.get('stem_tracks', []))} "
            f"tracks x {data.get('max_seconds')} s; recommended_steps {card.get('recommended_steps')}, "
            "which every later decode uses): use --overwrite to replace them, or -o DIR for a measured copy"
        )
    return path


def _warn_if_less(old: dict[str, Any] | None, new: dict[str, Any], path: Path) -> None:
    """Log when the new measurement covers less audio than the one it replaces."""
    if not old:
        return

    def amount(m: dict[str, Any]) -> float:
        d = m.get("data", {})
        return len(d.get("stem_tracks", [])) * float(d.get("max_seconds") or 0.0)

    if amount(new) < amount(old):
        d0, d1 = old.get("data", {}), new["data"]
        log.warning(
            "%s: this measurement covers %d tracks x %g s, less than the %d x %g s of the card it "
            "replaces (its figures are less reliable)",
            path,
            len(d1["stem_tracks"]),
            d1["max_seconds"],
            len(d0.get("stem_tracks", [])),
            d0.get("max_seconds") or 0.0,
        )


def measure_checkpoint(
    checkpoint: str | Path | None,
    stems_dir: str | Path,
    music_dir: str | Path | None = None,
    max_tracks: int = 4,
    max_seconds: float = 10.0,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
    jobs: int | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Measure a checkpoint (``None``/``"default"``: the embedded model; a released model's name:
    its converted checkpoint in lincae's cache) and write its card.

    A card that holds measurements already is replaced only with ``overwrite`` (its
    ``recommended_steps`` changes every later decode); ``out`` writes a copy of the checkpoint
    with the new card there instead, and is the only way to measure the embedded model (lincae
    never writes into its installed package). A measurement on less data than the one it
    replaces is logged as a warning.

    ``model_card.json`` gets ``"measured"`` (replaced if present) and ``"recommended_steps"``;
    nothing else in the checkpoint is touched, and it is loaded again with ``verify=True``.

    Returns:
        ``{"checkpoint", "model_id", "card", "measured"}``.

    Raises:
        CheckpointError: If there is no checkpoint directory to write into, or the model id
            does not hold after writing.
    """
    path = (
        DEFAULT_MODEL_DIR
        if checkpoint is None or str(checkpoint) == "default"
        else resolve_if_released(checkpoint)
    )
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"Expected a checkpoint directory with model.safetensors. Got {path}.")
    _, old = load_checkpoint_info(path)
    target = _card_target(path, old, out, overwrite)
    model = load_model(path, device=device, verify=True)
    measured = measure_model(model, stems_dir, music_dir, max_tracks, max_seconds, seed, progress, jobs)
    _warn_if_less(old.get("measured"), measured, path)
    card = dict(old)
    card["measured"] = measured
    card["recommended_steps"] = measured["recommended_steps"]
    text = json.dumps(card, indent=2, allow_nan=True) + "\n"
    if target != path:
        with building_dir(target, replace=overwrite) as b:
            tmp = Path(str(b.tmp))  # a local folder: -o is a path
            shutil.copytree(path, tmp, ignore=shutil.ignore_patterns("model_card.json"))
            write_text_atomic(tmp / "model_card.json", text)
        path = target
    else:
        try:
            write_text_atomic(path / "model_card.json", text)
        except OSError as exc:  # e.g. a read-only checkpoint
            raise CheckpointError(f"Cannot write {path / 'model_card.json'}: {exc}") from exc
    again = load_model(path, verify=True)
    if again.model_id != model.model_id:  # pragma: no cover - the weights are not written
        raise CheckpointError(f"{path}: the model id changed while writing the card.")
    return {
        "checkpoint": str(path),
        "model_id": model.model_id,
        "card": str(path / "model_card.json"),
        "measured": measured,
    }
