"""Encode audio libraries into a latent store: resumable, shardable, safe with bad files.

``encode_files(discover(LIB), "OUT.zarr", model)`` is one call. It

1. plans the store once (:mod:`lincae_core.encoding.plan`: headers only, atomic publication);
2. or, when ``OUT`` exists, checks that it was planned by the same model, config, window,
   channels, dtype and input set (a clear error otherwise, unless ``overwrite``), and resumes
   (:mod:`lincae_core.encoding.resume`, :mod:`lincae_core.encoding.identity`);
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
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lincae_core.config import AUTO_BATCH, InferenceConfig, ModelConfig
from lincae_core.discovery import Source
from lincae_core.encoding.forward import deterministic_cudnn, encoder_forward, encoder_memory_format
from lincae_core.encoding.resume import open_or_plan, resumed_settings
from lincae_core.encoding.run import Runner, RunStats
from lincae_core.encoding.schedule import BLOCK_TRACKS, BlockSchedule, block_schedule, blocks_of
from lincae_core.encoding.settings import EncodeProgress, EncodeSettings, EncodeSummary
from lincae_core.errors import StoreMismatchError
from lincae_core.location import RemotePath, as_location
from lincae_core.nn.model import LinCAE
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_DONE, STATUS_FAILED, STATUS_PLANNED

__all__ = ["encode_files"]

log = logging.getLogger(__name__)


def encode_files(
    sources: Sequence[Source],
    out: str | Path | RemotePath,
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
            :func:`lincae_core.models.load_model`).
        inference: Window, overlap and batch size (default ``InferenceConfig(batch_size="auto")``:
            chosen for the device and recorded in the store,
            :func:`lincae_core.encoding.batching.auto_batch_size`).
        settings: Channels, dtype, workers, shard, overwrite, forward options (default
            ``EncodeSettings()``: channels-last on CPU).
        args: JSON-ready arguments recorded in the store's lineage (e.g. the command line,
            :func:`lincae_core.encoding.identity.encode_args`).
        progress: Called with an :class:`EncodeProgress` while planning and encoding.

    Returns:
        What this call did; ``partial`` is true when some inputs failed.

    Raises:
        StoreMismatchError: ``out`` was made by another model, config or input set.
        StoreFormatError: ``out`` is not a lincae store, or is planned for another shard count.
    """
    t0 = time.monotonic()
    inference = inference or InferenceConfig(batch_size=AUTO_BATCH)
    out = as_location(out)
    settings = resumed_settings(out, settings or EncodeSettings())
    settings = settings.for_device(next(model.parameters()).device.type)
    store, planned, update = open_or_plan(out, sources, model, inference, settings, args, progress)
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
        update=update,
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


def _schedules(
    store: LatentStore,
    rows: range,
    inference: InferenceConfig,
    cfg: ModelConfig,
    channels: int,
    pending: np.ndarray,
) -> Iterator[BlockSchedule]:
    window, overlap = inference.frames(cfg)
    frames = store.table()["frames"]
    for block in blocks_of(rows):
        yield block_schedule(block, frames, window, overlap, channels, int(inference.batch_size), pending)


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
    # rows of a grown store whose input is gone are done (grow drops the others): never read
    paths = {r: by_key[str(table["key"][r])] for r in range(lo, hi) if str(table["key"][r]) in by_key}
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
        encoder_forward(model, settings),
        paths,
        pending,
        settings.channels,
        report,
        chunk_writes=settings.chunk_writes,
        forward_workers=settings.forward_workers(),
    )
    ctx = deterministic_cudnn() if device.type == "cuda" else contextlib.nullcontext()
    with ctx, encoder_memory_format(model, bool(settings.channels_last)):
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
