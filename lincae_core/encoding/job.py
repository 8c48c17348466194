"""Encode audio libraries into a latent store: resumable, shardable, safe with bad files.

``encode_files(discover(LIB), "OUT.zarr", model)`` is one call. It

1. plans the store once (:mod:`lincae_core.encoding.plan`: headers only, atomic publication);
2. or, when ``OUT`` exists, checks that it was planned by the same model, config, window,
   channels, dtype and input set (a clear error otherwise, unless ``overwrite``), and resumes;
3. encodes the rows of its shard still pending (:mod:`lincae_core.encoding.run`), in the canonical
   batch schedule of :mod:`lincae_core.encoding.schedule`, so that a killed-and-rerun, a sharded
   and an uninterrupted encode write byte-identical latents;
4. records every input that fails, with the reason, in the store's failure ledger.

A track is marked done only after its latents are written, and zarr writes each chunk
atomically, so a kill at any instant loses at most the work since the last status write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lincae_core.config import AUTO_BATCH, InferenceConfig
from lincae_core.device import torch_threads
from lincae_core.discovery import Source, sources_fingerprint
from lincae_core.encoding.batching import BatchChoice, choose_batch_size, dominant_length
from lincae_core.encoding.plan import EncodePlan, build_plan, create_planned_store
from lincae_core.encoding.run import Runner, RunStats, forward_segments
from lincae_core.encoding.schedule import BLOCK_TRACKS, BlockSchedule, block_schedule, blocks_of
from lincae_core.encoding.settings import (
    EncodeProgress,
    EncodeSettings,
    EncodeSummary,
    shard_from_env,
)
from lincae_core.errors import StoreFormatError, StoreMismatchError
from lincae_core.inference import encode as encode_audio
from lincae_core.linearity import card_summary
from lincae_core.nn.model import LinCAE
from lincae_core.publish import remove_stale_siblings
from lincae_core.store import LatentStore, lineage_entry
from lincae_core.store.layout import STATUS_DONE, STATUS_FAILED, STATUS_PLANNED
from lincae_core.windowing import window_span

__all__ = [
    "shard_from_env",
    "auto_batch_size",
    "encode_args",
    "EncodeProgress",
    "EncodeSettings",
    "EncodeSummary",
    "encode_files",
    "plan_encode",
]

log = logging.getLogger(__name__)


def encode_args(
    library: str,
    files_from: str | None,
    extensions: Sequence[str],
    checkpoint: str | None,
    inference: InferenceConfig,
    settings: EncodeSettings,
) -> dict[str, Any]:
    """The JSON-ready arguments of an encode, as recorded in the store's lineage."""
    return {
        "library": library,
        "files_from": files_from,
        "ext": list(extensions),
        "checkpoint": checkpoint,
        "channels": settings.channels,
        "dtype": settings.dtype,
        "window_s": inference.window_s,
        "overlap_s": inference.overlap_s,
        "batch_size": inference.batch_size,
        "shards": settings.shards,
        "channels_last": settings.channels_last,
        "autocast": settings.autocast,
        "compile": settings.compile,
        "parallel_forward": settings.parallel_forward,
        "chunk_frames": settings.chunk_frames,
    }


def plan_encode(
    sources: Sequence[Source],
    model: LinCAE,
    workers: int = 2,
    progress: Callable[[EncodeProgress], None] | None = None,
) -> EncodePlan:
    """Probe every source's header and return the plan (``--dry-run``: writes nothing)."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(EncodeProgress("plan", done[0], len(sources)))

    return build_plan(sources, model.config, workers, tick)


def _expected_identity(
    model: LinCAE,
    inference: InferenceConfig,
    settings: EncodeSettings,
    fingerprint: str,
    n_sources: int,
) -> dict[str, Any]:
    window, overlap = inference.frames(model.config)
    return {
        "window_s": inference.window_s,
        "overlap_s": inference.overlap_s,
        "window_frames": window,
        "overlap_frames": overlap,
        "batch_size": inference.batch_size,
        "channels_last": settings.channels_last,
        "autocast": settings.autocast,
        "compile": settings.compile,
        "parallel_forward": settings.parallel_forward,
        "block_tracks": BLOCK_TRACKS,
        "channels": settings.channels,
        "shards": settings.shards,
        "inputs": n_sources,
        "inputs_sha256": fingerprint,
    }


def _short(v: Any) -> Any:
    return f"{v[:12]}..." if isinstance(v, str) and len(v) > 16 else v


def _check_identity(
    store: LatentStore, model: LinCAE, settings: EncodeSettings, encoding: Mapping[str, Any]
) -> None:
    """Refuse to resume a store made by another model, config, window or input set."""
    have = store.encoding or {}
    checks = [
        ("model id", store.model_id, model.model_id),
        ("model config", store.model_config, model.config.to_dict()),
        ("latent channels", store.channels, settings.latent_channels),
        ("dtype", store.dtype, settings.dtype),
        *(
            (k, have.get(k), encoding[k])
            for k in (
                "window_frames",
                "overlap_frames",
                "block_tracks",
                "channels",
                "inputs",
                "inputs_sha256",
            )
        ),
    ]
    if settings.chunk_frames is not None:  # asked for explicitly: the store must have it
        checks.append(("chunk_frames", store.chunk_frames, settings.chunk_frames))
    for name, got, want in checks:
        if got != want:
            raise StoreMismatchError(
                f"{store.path} was made with another {name} (store: {_short(got)}, this encode: "
                f"{_short(want)}); use --overwrite to replace it, or another output path."
            )
    for name, old_default in (
        ("batch_size", None),
        ("channels_last", False),
        ("autocast", "none"),
        ("compile", False),
        ("parallel_forward", False),
    ):
        if have.get(name, old_default) != encoding[name]:
            log.warning(
                "%s was planned with %s=%s, this run uses %s: latents may differ in the "
                "last bits from an uninterrupted run.",
                store.path,
                name,
                have.get(name, old_default),
                encoding[name],
            )


def _plan_store(
    out: Path,
    sources: Sequence[Source],
    model: LinCAE,
    settings: EncodeSettings,
    encoding: dict[str, Any],
    args: Mapping[str, Any],
    progress: Callable[[EncodeProgress], None] | None,
    replace: bool,
) -> bool:
    plan = plan_encode(sources, model, settings.workers, progress)
    cfg = model.config
    if encoding["batch_size"] == AUTO_BATCH:
        frames = np.array([r[1] for r in plan.rows], np.int64)
        choice = auto_batch_size(
            model,
            InferenceConfig(window_s=encoding["window_s"], overlap_s=encoding["overlap_s"]),
            settings,
            frames,
        )
        encoding["batch_size"], encoding["batch_size_auto"] = choice.batch_size, choice.record()
    inference = InferenceConfig(
        window_s=encoding["window_s"], overlap_s=encoding["overlap_s"], batch_size=encoding["batch_size"]
    )
    # Where the encoder ran, and whether under float16 autocast: a store encoded on CUDA is within a
    # few float16 steps of one encoded on the CPU, not bit-identical (docs/presets.md, "On a GPU").
    device = next(model.parameters()).device
    ran_on = {"device": device.type, "float16_autocast": bool(settings.amp and device.type == "cuda")}
    lineage = [lineage_entry("encode", {**args, **ran_on, "encoding": encoding}, [])]
    return create_planned_store(
        out,
        plan,
        settings.shards,
        replace,
        model_id=model.model_id or "unknown",
        model_config=cfg.to_dict(),
        geometry=cfg.geometry(),
        channels=settings.latent_channels,
        dtype=settings.dtype,
        encoding=encoding,
        lineage=lineage,
        **({} if settings.chunk_frames is None else {"chunk_frames": settings.chunk_frames}),
        model_card=card_summary(model.card),
        origin=encode_origin(model, inference, settings.latent_channels),
    )


def encode_origin(model: LinCAE, inference: InferenceConfig, channels: int) -> np.ndarray:
    """``Enc(0)``: the latents ``[W, C, D]`` of one encode window of digital silence.

    Encoded like the tracks (the same window), so the affine operations subtract what the encoder
    really gives silence (docs/method.md §4.2).
    """
    window, overlap = inference.frames(model.config)
    # Cached on the model for the process (encoding several libraries costs one window of silence
    # once), keyed by the window and by the parameters' in-place version counters, so weights
    # changed in place (a training step, load_state_dict) are never served a stale Enc(0).
    key = (window, overlap, tuple(p._version for p in model.parameters()))
    cache: dict[tuple, np.ndarray] = model.__dict__.setdefault("_origin_cache", {})
    if key not in cache:
        silence = np.zeros(window * model.config.samples_per_frame, np.float32)
        cache.clear()
        cache[key] = encode_audio(model, silence, inference).numpy()  # [D, W]
    return np.repeat(cache[key].T[:, None, :], channels, axis=1)


def _forward(model: LinCAE, settings: EncodeSettings) -> Callable[[np.ndarray], np.ndarray]:
    device = next(model.parameters()).device
    return functools.partial(
        forward_segments,
        model,
        amp=settings.amp and device.type == "cuda",
        channels_last=bool(settings.channels_last),
        autocast=settings.autocast,
        compile=settings.compile,
    )


def _as_parallel_passes(
    forward: Callable[[np.ndarray], np.ndarray], passes: int
) -> Callable[[np.ndarray], None]:
    """The probe's forward for parallel passes: ``passes`` copies of the pass at once, each on one
    torch thread, as the encode runs them (threads restored afterwards)."""

    def run(x: np.ndarray) -> None:
        with torch_threads(1), ThreadPoolExecutor(passes) as pool:
            list(pool.map(forward, [x] * passes))

    return run


def auto_batch_size(
    model: LinCAE, inference: InferenceConfig, settings: EncodeSettings, frames: np.ndarray
) -> BatchChoice:
    """Resolve ``batch_size="auto"`` for a table of tracks of ``frames`` latent frames each.

    Logged on stderr; see :mod:`lincae_core.encoding.batching`.
    """
    cfg, device = model.config, next(model.parameters()).device
    settings = settings.for_device(device.type)
    window, overlap = inference.frames(cfg)
    length, n_windows = dominant_length(frames, window, overlap)
    a, b = window_span(0, length, cfg)
    passes = settings.forward_workers()  # on CPU by default one pass per core at once
    forward: Callable[[np.ndarray], object] = _forward(model, settings)
    if passes > 1:  # the probe times the passes as the encode runs them
        forward = _as_parallel_passes(forward, passes)
    with _encoder_memory_format(model, bool(settings.channels_last)):
        choice = choose_batch_size(
            forward,
            device_type=device.type,
            cache_key=(
                str(device),
                model.model_id,
                bool(settings.channels_last),
                settings.autocast,
                settings.compile,
                settings.amp,
            ),
            segment_frames=length,
            segment_samples=b - a,
            sample_rate=cfg.sample_rate,
            job_segments=0 if settings.compile else n_windows * settings.latent_channels,  # no
            passes=passes,
        )  # probe when compiling: every candidate shape would compile first
    per = ", ".join(f"{k}: {v:.1f}" for k, v in choice.ms_per_segment.items())
    log.info(
        "batch size auto: %d on %s for windows of %d frames (%s%s)",
        choice.batch_size,
        device,
        length,
        choice.how,
        f"; ms per window {per}" if per else "",
    )
    return choice


def open_or_plan(
    out: Path,
    sources: Sequence[Source],
    model: LinCAE,
    inference: InferenceConfig,
    settings: EncodeSettings,
    args: Mapping[str, Any] | None = None,
    progress: Callable[[EncodeProgress], None] | None = None,
) -> tuple[LatentStore, bool]:
    """Open the store at ``out`` (checked against this encode), planning it first if needed.

    With ``inference.batch_size="auto"`` a store being planned gets the batch size chosen for
    this device (:func:`auto_batch_size`), and an existing one keeps the batch size it was planned
    with (so that a resumed or sharded encode batches exactly as the first process).

    Returns:
        The store opened ``r+`` and whether this process planned it.
    """
    encoding = _expected_identity(model, inference, settings, sources_fingerprint(sources), len(sources))
    for p in remove_stale_siblings(out):
        log.info("removed stale temporary %s", p)
    planned = False
    if settings.overwrite and (out.exists() or out.is_symlink()):
        if not (out / "zarr.json").is_file():
            raise StoreFormatError(
                f"{out} exists and is not a Zarr store: refusing to replace it, even with --overwrite."
            )
        log.info("replacing %s (--overwrite)", out)
        planned = _plan_store(out, sources, model, settings, encoding, dict(args or {}), progress, True)
    for _ in range(3):  # plan, or lose the race to another shard and open its store
        if not out.exists() or (out.is_dir() and not any(out.iterdir())):
            planned = _plan_store(out, sources, model, settings, encoding, dict(args or {}), progress, False)
        try:
            store = LatentStore.open(out, "r+")
            planned_batch = (store.encoding or {}).get("batch_size")
            if inference.auto_batch and isinstance(planned_batch, int):
                encoding["batch_size"] = planned_batch  # resume/shard: batch as the planner did
            _check_identity(store, model, settings, encoding)
            return store, planned
        except (StoreFormatError, StoreMismatchError):
            if not settings.overwrite or planned:
                raise
            if not (out / "zarr.json").is_file():
                raise StoreFormatError(
                    f"{out} exists and is not a Zarr store: refusing to replace it, even with --overwrite."
                ) from None
        log.info("replacing %s (--overwrite)", out)
        planned = _plan_store(out, sources, model, settings, encoding, dict(args or {}), progress, True)
    raise StoreFormatError(f"{out}: could not plan the store (it keeps changing under this process).")


def _schedules(
    store: LatentStore, rows: range, inference: InferenceConfig, cfg: Any, channels: int, pending: np.ndarray
) -> Iterator[BlockSchedule]:
    window, overlap = inference.frames(cfg)
    frames = store.table()["frames"]
    for block in blocks_of(rows):
        yield block_schedule(block, frames, window, overlap, channels, inference.batch_size, pending)


@contextlib.contextmanager
def _deterministic_cudnn() -> Iterator[None]:
    """Run cuDNN in deterministic mode while encoding (restored afterwards)."""
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


@contextlib.contextmanager
def _encoder_memory_format(model: LinCAE, channels_last: bool) -> Iterator[None]:
    """Convert the encoder's weights to channels-last for a block (restored afterwards)."""
    if not channels_last:
        yield
        return
    model.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        yield
    finally:
        model.encoder.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def encode_files(
    sources: Sequence[Source],
    out: str | Path,
    model: LinCAE,
    inference: InferenceConfig | None = None,
    settings: EncodeSettings | None = None,
    args: Mapping[str, Any] | None = None,
    progress: Callable[[EncodeProgress], None] | None = None,
) -> EncodeSummary:
    """Encode audio files into the latent store ``out`` (planned once, resumed, sharded).

    Args:
        sources: Inputs with their keys (:func:`lincae_core.discovery.discover`).
        out: Store path; created (planned) if missing, resumed if made by the same encode.
        model: The autoencoder, on the device it should run on (its ``model_id`` is set by
            :func:`lincae_core.checkpoint.load_model`).
        inference: Window, overlap and batch size (default ``InferenceConfig(batch_size="auto")``:
            chosen for the device and recorded in the store, :func:`auto_batch_size`).
        settings: Channels, dtype, workers, shard, overwrite, forward options (default
            ``EncodeSettings()``: channels-last on CPU).
        args: JSON-ready arguments recorded in the store's lineage (e.g. the command line).
        progress: Called with an :class:`EncodeProgress` while planning and encoding.

    Returns:
        What this call did; ``partial`` is true when some inputs failed.

    Raises:
        StoreMismatchError: ``out`` was made by another model, config or input set.
        StoreFormatError: ``out`` is not a lincae store, or is planned for another shard count.
    """
    t0 = time.monotonic()
    inference = inference or InferenceConfig(batch_size=AUTO_BATCH)
    settings, out = settings or EncodeSettings(), Path(out)
    if not settings.overwrite and (out / "zarr.json").is_file():
        with contextlib.suppress(Exception):  # resume as planned; a bad store is reported below
            planned_enc = LatentStore.open(out).encoding or {}
            if settings.channels_last is None and isinstance(planned_enc.get("channels_last"), bool):
                settings = dataclasses.replace(settings, channels_last=planned_enc["channels_last"])
            if settings.parallel_forward is None and "batch_size" in planned_enc:  # a store planned
                # before parallel passes existed ran one pass at a time
                settings = dataclasses.replace(
                    settings, parallel_forward=bool(planned_enc.get("parallel_forward"))
                )
    settings = settings.for_device(next(model.parameters()).device.type)
    store, planned = open_or_plan(out, sources, model, inference, settings, args, progress)
    if inference.auto_batch:
        inference = dataclasses.replace(inference, batch_size=int((store.encoding or {})["batch_size"]))
    planned_shards = (store.encoding or {}).get("shards")
    if planned_shards != settings.shards:
        raise StoreMismatchError(
            f"{out} is planned for {planned_shards} shard(s); this process runs shard "
            f"{settings.shard}/{settings.shards} (use --shard i/{planned_shards})."
        )
    summary = EncodeSummary(
        str(out),
        settings.shard,
        settings.shards,
        tracks=store.n_tracks,
        planned_here=planned,
        batch_size=int(inference.batch_size),
        plan_failures=sum(1 for r in store.ledger() if r.get("index") is None),
    )
    if settings.plan_only:
        return _finish_summary(summary, store, t0)
    own = store.shard_tracks(settings.shard)
    status = store.table()["status"]
    pending = np.zeros(store.n_tracks, bool)
    pending[own.start : own.stop] = status[own.start : own.stop] == STATUS_PLANNED
    summary.skipped = int(len(own) - pending.sum())
    if not pending.any():
        summary.nothing_to_do = True
        return _finish_summary(summary, store, t0)
    stats = _run(store, model, sources, inference, settings, own, pending, progress, t0)
    summary.encoded, summary.failed, summary.audio_seconds = stats.encoded, stats.failed, stats.seconds
    summary.model_seconds = stats.model_seconds
    return _finish_summary(summary, store, t0)


def _run(
    store: LatentStore,
    model: LinCAE,
    sources: Sequence[Source],
    inference: InferenceConfig,
    settings: EncodeSettings,
    own: range,
    pending: np.ndarray,
    progress: Callable[[EncodeProgress], None] | None,
    t0: float,
) -> RunStats:
    table = store.table()
    by_key = {s.key: s.path for s in sources}
    lo, hi = blocks_of(own)[0] * BLOCK_TRACKS, min((blocks_of(own)[-1] + 1) * BLOCK_TRACKS, store.n_tracks)
    paths = {r: by_key[str(table["key"][r])] for r in range(lo, hi)}
    files_total = int(pending.sum())
    seconds_total = float(table["samples"][pending].sum()) / model.config.sample_rate
    files = [0]

    def report(stats: RunStats, finished: int) -> None:
        files[0] += finished
        if progress:
            progress(
                EncodeProgress(
                    "encode", files[0], files_total, stats.seconds, seconds_total, time.monotonic() - t0
                )
            )

    device = next(model.parameters()).device
    runner = Runner(
        store,
        model.config,
        _forward(model, settings),
        paths,
        pending,
        settings.channels,
        report,
        chunk_writes=settings.chunk_writes,
        forward_workers=settings.forward_workers(),
    )
    ctx = _deterministic_cudnn() if device.type == "cuda" else contextlib.nullcontext()
    with ctx, _encoder_memory_format(model, bool(settings.channels_last)):
        schedules = _schedules(store, own, inference, model.config, settings.latent_channels, pending)
        return runner.run(schedules, settings.workers, int(inference.batch_size))


def _finish_summary(summary: EncodeSummary, store: LatentStore, t0: float) -> EncodeSummary:
    own = store.shard_tracks(summary.shard)
    status = store.table()["status"]
    summary.failed_total = int((status[own.start : own.stop] == STATUS_FAILED).sum())
    summary.pending_elsewhere = int((status == STATUS_PLANNED).sum())
    summary.wall_seconds = time.monotonic() - t0
    done_here = status[own.start : own.stop] == STATUS_DONE
    log.debug("%s: %d of %d own rows done", store.path, int(done_here.sum()), len(own))
    summary.failures = [r for r in store.ledger() if r.get("index") is None or int(r["index"]) in own]
    return summary
