"""The store of an encode: planned by the first process, opened and checked by every other.

:func:`open_or_plan` plans the store when ``OUT`` is missing (or replaced with ``--overwrite``),
or opens the one there after checking that this encode may resume it
(:mod:`lincae_core.encoding.identity`); shard processes that start together race to plan, one
wins and the others open its store (:mod:`lincae_core.encoding.plan`). :func:`resumed_settings`
takes the forward options a store was planned with where this encode leaves them to the default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lincae_core.config import AUTO_BATCH, InferenceConfig
from lincae_core.discovery import Source, source_stamp, track_fingerprints
from lincae_core.encoding.batching import auto_batch_size
from lincae_core.encoding.grow import GrownPlan, carry_over, grown_plan, library_changes
from lincae_core.encoding.identity import EncodeRequest, check_resume, expected_encoding, inputs_changed
from lincae_core.encoding.origin import encode_origin
from lincae_core.encoding.plan import EncodePlan, create_planned_store, plan_encode
from lincae_core.encoding.settings import EncodeProgress, EncodeSettings
from lincae_core.errors import StoreFormatError, StoreMismatchError
from lincae_core.linearity import card_summary
from lincae_core.location import Location, RemotePath
from lincae_core.nn.model import LinCAE
from lincae_core.publish import remove_stale_siblings
from lincae_core.remote_publish import remote_state
from lincae_core.store import LatentStore, lineage_entry

__all__ = ["OpenedStore", "open_or_plan", "resumed_settings"]

log = logging.getLogger(__name__)


class OpenedStore(NamedTuple):
    """The store of an encode, opened ``r+``, whether this process planned it, and what changed
    in the library since the store was planned (:meth:`LibraryChanges.summary`; None: nothing)."""

    store: LatentStore
    planned: bool
    update: dict[str, Any] | None = None


def resumed_settings(out: Location, settings: EncodeSettings) -> EncodeSettings:
    """``settings`` with the memory format, parallel passes and checksums of the store planned at
    ``out`` where they are left to the default (None), so that a resumed encode runs as the first
    one (and an updated store keeps its checksums)."""
    if settings.overwrite or not (out / "zarr.json").is_file():
        return settings
    with contextlib.suppress(Exception):  # resume as planned; a bad store is reported later
        planned = LatentStore.open(out)
        planned_enc = planned.encoding or {}
        if settings.checksums is None:
            settings = dataclasses.replace(settings, checksums=bool(planned.checksums))
        if settings.channels_last is None and isinstance(planned_enc.get("channels_last"), bool):
            settings = dataclasses.replace(settings, channels_last=planned_enc["channels_last"])
        if settings.parallel_forward is None and "batch_size" in planned_enc:  # a store planned
            # before parallel passes existed ran one pass at a time
            settings = dataclasses.replace(
                settings, parallel_forward=bool(planned_enc.get("parallel_forward"))
            )
    return settings


def _plan_store(
    out: Location,
    sources: Sequence[Source],
    model: LinCAE,
    settings: EncodeSettings,
    encoding: dict[str, Any],
    args: Mapping[str, Any],
    progress: Callable[[EncodeProgress], None] | None,
    replace: bool,
    fingerprints: Sequence[int],
    grown: tuple[LatentStore, GrownPlan] | None = None,
) -> bool:
    plan: EncodePlan
    if grown is None:
        plan = plan_encode(sources, model, settings.workers, progress)
        fp_of = {s.key: fp for s, fp in zip(sources, fingerprints, strict=True)}
        fingerprints = [fp_of[r.key] for r in plan.rows]
    else:
        plan, fingerprints = grown[1].plan, grown[1].fingerprints
    cfg = model.config
    if encoding["batch_size"] == AUTO_BATCH:
        frames = np.array([r.frames for r in plan.rows], np.int64)
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
    source = {"model_source": model.card["source"]} if model.card.get("source") else {}  # hub, import
    record = {**args, **ran_on, "encoding": encoding, **source}
    lineage = [lineage_entry("encode", record, [])]
    if grown is not None:  # the updated store keeps the history of the one it grows
        lineage = [*grown[0].lineage, lineage_entry("encode", record, [])]
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
        chunks_per_object=settings.chunks_per_object,
        checksums=bool(settings.checksums),
        model_card=card_summary(model.card),
        origin=encode_origin(model, inference, settings.latent_channels),
        fingerprints=fingerprints,
        fill=None if grown is None else (lambda new: carry_over(grown[0], new, grown[1])),
    )


def _to_plan(out: Location) -> bool:
    """True when ``out`` has no store yet: nothing there (an empty folder), or in object storage
    the objects of a plan not committed yet (another shard planning now, or one killed while
    uploading: planning again uploads the same objects, and one conditional root commits)."""
    if not isinstance(out, RemotePath):
        return not out.exists() or (out.is_dir() and not any(out.iterdir()))
    state = remote_state(out)
    return state == "absent" or (state == "other" and (out / "tracks" / "key" / "zarr.json").is_file())


def open_or_plan(
    out: Location,
    sources: Sequence[Source],
    model: LinCAE,
    inference: InferenceConfig,
    settings: EncodeSettings,
    args: Mapping[str, Any] | None = None,
    progress: Callable[[EncodeProgress], None] | None = None,
) -> OpenedStore:
    """Open the store at ``out`` (checked against this encode), planning it first if needed.

    With ``inference.batch_size="auto"`` a store being planned gets the batch size chosen for
    this device (:func:`lincae_core.encoding.batching.auto_batch_size`), and an existing one keeps
    the batch size it was planned with (so that a resumed or sharded encode batches exactly as the
    first process).

    Returns:
        The store opened ``r+`` and whether this process planned it.

    Raises:
        StoreMismatchError: ``out`` was made by another model, config or input set.
        StoreFormatError: ``out`` is not a lincae store (and cannot be replaced).
    """
    stamps = [source_stamp(s) for s in sources]  # one stat per input, for both fingerprints
    request = EncodeRequest.of(model, inference, settings, sources, stamps)
    fps = track_fingerprints(sources, stamps)
    encoding = expected_encoding(request)
    args = dict(args or {})
    for p in remove_stale_siblings(out) if isinstance(out, Path) else ():
        log.info("removed stale temporary %s", p)
    planned = False
    if settings.overwrite and (out.exists() or out.is_symlink()):
        if not (out / "zarr.json").is_file() and not _to_plan(out):
            raise StoreFormatError(
                f"{out} exists and is not a Zarr store: refusing to replace it, even with --overwrite."
            )
        log.info("replacing %s (--overwrite)", out)
        planned = _plan_store(out, sources, model, settings, encoding, args, progress, True, fps)
    for _ in range(3):  # plan, or lose the race to another shard and open its store
        if _to_plan(out):
            planned = _plan_store(out, sources, model, settings, encoding, args, progress, False, fps)
        try:
            store = LatentStore.open(out, "r+")
            planned_batch = (store.encoding or {}).get("batch_size")
            if inference.auto_batch and isinstance(planned_batch, int):
                encoding["batch_size"] = planned_batch  # resume/shard: batch as the planner did
            check_resume(store, request, encoding, inputs=False)
            if planned or not inputs_changed(store, encoding):
                return OpenedStore(store, planned)
            return _grow(store, sources, fps, model, settings, encoding, args, progress)
        except (StoreFormatError, StoreMismatchError):
            if not settings.overwrite or planned:
                raise
            if not (out / "zarr.json").is_file():
                raise StoreFormatError(
                    f"{out} exists and is not a Zarr store: refusing to replace it, even with --overwrite."
                ) from None
        log.info("replacing %s (--overwrite)", out)
        planned = _plan_store(out, sources, model, settings, encoding, args, progress, True, fps)
    raise StoreFormatError(f"{out}: could not plan the store (it keeps changing under this process).")


def _grow(
    store: LatentStore,
    sources: Sequence[Source],
    fps: Sequence[int],
    model: LinCAE,
    settings: EncodeSettings,
    encoding: dict[str, Any],
    args: dict[str, Any],
    progress: Callable[[EncodeProgress], None] | None,
) -> OpenedStore:
    """Plan the store again for a library with new or changed inputs, keeping finished tracks
    (:mod:`lincae_core.encoding.grow`), and open it."""
    out = store.path
    changes = library_changes(store, sources, fps)
    if settings.shards > 1 and not settings.plan_only:
        raise StoreMismatchError(
            f"{out}: {len(changes.added)} inputs are new and {len(changes.changed)} changed since the "
            f"store was planned; update the plan once, before the shards start: lincae encode ... "
            f"{out} --shard 0/{settings.shards} --plan-only (finished tracks are kept)."
        )
    update = changes.summary(store)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(EncodeProgress("plan", done[0], len(changes.added) + len(changes.changed)))

    grown = grown_plan(store, sources, fps, changes, model.config, settings.workers, tick)
    for name in ("batch_size_auto",):  # how the planner chose, kept with its choice
        if name in (store.encoding or {}):
            encoding[name] = (store.encoding or {})[name]
    _plan_store(
        out,
        sources,
        model,
        settings,
        encoding,
        {**args, "update": update},
        progress,
        True,
        fps,
        (store, grown),
    )
    return OpenedStore(LatentStore.open(out, "r+"), True, update)
