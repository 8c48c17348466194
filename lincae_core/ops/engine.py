"""Out-of-core execution of an :class:`~lincae_core.ops.plan.OpPlan` into a new store.

:func:`run_plan` creates the output store (model, geometry, chunk layout and lineage of the
first input; the output policy of :mod:`lincae_core.ops.outputs`), cuts its latent array into
blocks of whole chunks (at most ``max_block_frames`` frames, at least one chunk), groups them into
work units (:func:`work_units`, each shipping only the plan rows it touches) and runs them with
:func:`lincae_core.ops.parallel.run_units` through the block kernel
(:func:`lincae_core.ops.kernel.run_unit`). The output is built under a temporary name next to
the final path and renamed into place only when complete, so a kill never leaves a half-written
store under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lincae_core.errors import LincaeError
from lincae_core.location import RemotePath, absolute, resolved
from lincae_core.ops.kernel import Unit, run_unit
from lincae_core.ops.options import OpOptions, OpResult
from lincae_core.ops.outputs import check_complete, check_output, default_output
from lincae_core.ops.parallel import run_units
from lincae_core.ops.plan import OpPlan
from lincae_core.publish import building_dir
from lincae_core.remote_publish import upload_skeleton
from lincae_core.store import LatentStore
from lincae_core.store.array import CachedArray
from lincae_core.store.lineage import lineage_entry

__all__ = ["block_groups", "run_plan", "work_units"]


def block_groups(
    total: int, chunk_frames: int, max_block_frames: int, n_jobs: int
) -> list[list[tuple[int, int]]]:
    """The output's chunk-aligned blocks ``[b0, b1)``, grouped into runs of consecutive blocks
    (one run a work unit: up to 16 blocks, and about 4 units per worker where there are few)."""
    bf = max(chunk_frames, max_block_frames // chunk_frames * chunk_frames)
    blocks = [(b, min(b + bf, total)) for b in range(0, total, bf)]
    per = max(1, min(16, math.ceil(len(blocks) / (4 * n_jobs))))
    return [blocks[i : i + per] for i in range(0, len(blocks), per)]


def work_units(
    plan: OpPlan,
    offs: np.ndarray,
    out_path: str,
    in_paths: Sequence[str],
    groups: Sequence[Sequence[tuple[int, int]]],
    options: OpOptions,
    origin: np.ndarray | None = None,
) -> list[Unit]:
    """One :class:`~lincae_core.ops.kernel.Unit` per group of blocks, with only the plan rows
    of the output tracks its blocks touch."""
    units = []
    for blocks in groups:
        i0 = int(np.searchsorted(offs + plan.frames, blocks[0][0], side="right"))
        i1 = int(np.searchsorted(offs, blocks[-1][1], side="left"))
        sl = slice(i0, i1)
        units.append(
            Unit(
                out_path=out_path,
                in_paths=tuple(in_paths),
                offs=offs[sl],
                frames=plan.frames[sl],
                src_offset=plan.src_offset[:, sl],
                src_frames=plan.src_frames[:, sl],
                gains=plan.gains[:, sl],
                blocks=tuple(blocks),
                max_read=options.max_block_frames,
                shape=plan.shape,
                samples=plan.samples[sl],
                origin=origin,
                placement=None if plan.placement is None else plan.placement.columns(sl),
                fused_pass=options.fused_pass,
                merge_runs=options.merge_runs,
            )
        )
    return units


def _check_origin(plan: OpPlan, first: LatentStore, origin: str) -> np.ndarray | None:
    """``Enc(0)`` of the first input for the affine form (None for the linear form)."""
    if origin not in ("linear", "affine"):
        raise LincaeError(f"Expected origin 'linear' or 'affine'. Got {origin!r} instead.")
    enc0 = first.origin() if origin == "affine" else None
    if origin == "affine" and plan.placement is not None:
        raise LincaeError(
            "Expected origin 'linear' for placed segments (their crossfade gains sum "
            "to 1, where both forms agree). Got 'affine' instead."
        )
    if origin == "affine" and enc0 is None:
        raise LincaeError(
            f"{first.path} records no Enc(0) (made before lincae stored it): "
            "re-encode it, or use --origin linear"
        )
    return enc0


def run_plan(
    plan: OpPlan,
    inputs: Sequence[LatentStore],
    out: str | os.PathLike | RemotePath | None,
    *,
    op: str,
    args: dict[str, Any],
    options: OpOptions,
    origin: str = "linear",
    dtype: str | None = None,
) -> OpResult:
    """Write the output store of ``plan`` at ``out`` and return what was written.

    The output copies model, geometry, channels, encoding and chunk layout (frames a chunk,
    chunk key separator, chunks per object, checksums) from ``inputs[0]`` and records a
    lineage entry (op, args, every input's path and store id) after the first input's lineage.
    Without ``out`` the store goes beside the first input
    (:func:`~lincae_core.ops.outputs.default_output`). Tracks of the inputs that are still
    planned or failed are left out and counted in the result (``left_out``);
    ``options.require_complete`` refuses such inputs instead. ``origin="affine"`` adds
    ``(1 − Σ g) · Enc(0)`` with the first input's recorded ``Enc(0)`` (docs/method.md §4.2).
    ``options.scheduler`` runs the work units on a Dask cluster (:mod:`lincae_core.ops.parallel`).
    ``dtype``: the output dtype (default: ``options.dtype``, else the first input's).
    """
    first = inputs[0]
    enc0 = _check_origin(plan, first, origin)
    left = check_complete(inputs, options.require_complete)
    dest = check_output(default_output(inputs, op) if out is None else out, inputs, options.overwrite)
    entry = lineage_entry(op, {**args, "origin": origin}, inputs)
    for rec, s in zip(entry["inputs"][1:], inputs[1:], strict=True):
        rec["lineage"] = s.lineage
    with (
        building_dir(dest, replace=options.overwrite, direct=True) as building,
        contextlib.ExitStack() as stack,
    ):
        tmp = building.tmp  # where the units write the latents
        # In object storage the store's skeleton (metadata, table, sources, origin: everything but
        # the latents) is built in a local folder and uploaded in one concurrent batch, root first
        # (marked incomplete), rather than object by object through zarr; the root is committed last.
        skeleton = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lincae-op-"))) / "out.zarr"
        store = LatentStore.create(
            skeleton if building.direct else tmp,
            commit=not building.direct,
            model_id=first.model_id,
            model_config=first.model_config,
            geometry=first.geometry,
            channels=first.channels,
            dtype=dtype or options.dtype or first.dtype,
            chunk_frames=first.chunk_frames,
            chunks_per_object=first.chunks_per_object,
            checksums=bool(first.checksums),
            chunk_key_separator=first.chunk_key_separator,
            encoding=first.encoding,
            model_card=first.model_card,
            lineage=[*first.lineage, entry],
        )
        store.plan(plan.rows())
        if plan.sources is not None:
            store.write_sources(plan.sources.T, plan.gains.T, [str(resolved(s.path)) for s in inputs])
        offs = store.table()["offset"]
        frames0 = first.origin_frames()
        if frames0 is not None:
            store.write_origin(frames0)
        if building.direct:  # nothing reads an uncommitted store: its rows may be done already
            store.mark_done(np.arange(store.n_tracks))
            upload_skeleton(skeleton, RemotePath(str(tmp)))
        paths = [absolute(s.path) for s in inputs]  # workers may run in another directory
        if plan.placement is not None:
            paths = [paths[k] for k in plan.placement.input_index]
        total, chunk = store.total_frames, store.chunk_frames

        def units(n_jobs: int) -> list[Unit]:
            groups = block_groups(total, chunk, options.max_block_frames, n_jobs)
            return work_units(plan, offs, absolute(tmp), paths, groups, options, enc0)

        shared: dict[str, CachedArray] = {}  # one chunk cache per input for the whole operation
        scratch: dict[tuple[Any, ...], np.ndarray] = {}
        try:
            run_units(
                run_unit,
                units,
                options.jobs,
                options.scheduler,
                options.progress,
                in_process={"readers_cache": shared, "scratch": scratch},
            )
        except LincaeError as exc:  # name the output, not the temporary it is built in
            raise LincaeError(str(exc).replace(absolute(tmp), str(dest))) from exc
        except OSError as exc:
            if exc.filename is None or absolute(tmp) not in str(exc.filename):
                raise
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
        if building.direct:
            store.commit()
            (RemotePath(str(tmp)) / "zarr.json").write_bytes((skeleton / "zarr.json").read_bytes())
        else:
            store.mark_done(np.arange(store.n_tracks))
            store.commit()
    return OpResult(
        op=op,
        out=str(dest),
        tracks=len(plan.keys),
        frames=int(plan.frames.sum()),
        origin=origin,
        info=dict(plan.info),
        left_out=left,
    )
