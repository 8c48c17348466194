"""``select``: a subset of a store's done tracks, cut in time at latent frame boundaries.

:func:`plan_select` (pure) keeps the requested keys in their order and cuts each track to a
window (start rounded down to a frame boundary, duration up to whole frames, ``samples`` exact);
:func:`select_store` runs it through the engine (a copy: no arithmetic but the cast).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.engine import run_plan
from lincae_core.ops.options import OpOptions, OpResult, op_options
from lincae_core.ops.plan import OpPlan, Table, done_rows
from lincae_core.store import StoreLike, open_store

__all__ = ["plan_select", "select_store"]


def plan_select(
    table: Table,
    name: str,
    sample_rate: int,
    samples_per_frame: int,
    *,
    keys: Sequence[str] | None = None,
    start_s: float | None = None,
    duration_s: float | None = None,
) -> OpPlan:
    """Plan a subset by track keys and a time window, cut at latent frame boundaries.

    ``start_s`` rounds down to a frame boundary and ``duration_s`` up to whole frames; the
    output ``samples`` is the exact audio length inside the cut (at most ``duration_s``).
    Tracks that end before ``start_s`` are dropped and counted in ``info["empty"]``.
    """
    rows = done_rows(table)
    if keys is not None:
        index = {str(table["key"][r]): int(r) for r in rows}
        wanted = list(dict.fromkeys(keys))
        absent = [k for k in wanted if k not in index]
        if absent:
            raise StoreMismatchError(
                f"{len(absent)} requested keys are not done tracks of {name}, e.g. "
                + ", ".join(repr(k) for k in absent[:3])
            )
        rows = np.array([index[k] for k in wanted], dtype=np.int64)
    spf = samples_per_frame
    if start_s is not None and not (math.isfinite(start_s) and start_s >= 0):
        raise ConfigError(f"start: expected seconds >= 0, got {start_s}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"duration: expected seconds > 0, got {duration_s}")
    start = int(math.floor((start_s or 0.0) * sample_rate / spf + 1e-9))
    frames = np.maximum(table["frames"][rows] - start, 0)
    samples = np.clip(table["samples"][rows] - start * spf, 0, None)
    if duration_s is not None:
        frames = np.minimum(frames, math.ceil(duration_s * sample_rate / spf - 1e-9))
        samples = np.minimum(samples, round(duration_s * sample_rate))
    samples = np.minimum(samples, frames * spf)
    keep = frames > 0
    rows, frames, samples = rows[keep], frames[keep], samples[keep]
    return OpPlan(
        keys=[str(x) for x in table["key"][rows]],
        frames=frames,
        samples=samples,
        source_rate=table["source_rate"][rows],
        channels=table["channels"][rows],
        src_offset=(table["offset"][rows] + start)[None, :],
        src_frames=frames[None, :].copy(),
        gains=np.ones((1, rows.size)),
        info={"empty": int((~keep).sum()), "start_frame": start},
    )


def _keys_record(keys: Sequence[str]) -> dict[str, Any]:
    """Lineage form of a key list: its SHA-256 and count, and the keys when few."""
    digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()
    return {"count": len(keys), "sha256": digest, **({"keys": list(keys)} if len(keys) <= 1000 else {})}


def select_store(
    src: StoreLike,
    out: str | os.PathLike | None = None,
    *,
    keys: Sequence[str] | None = None,
    start_s: float | None = None,
    duration_s: float | None = None,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Write a subset of ``src``: the done tracks in ``keys`` (in that order), cut in time.

    Args:
        src: Input store.
        out: Output path (default: beside ``src``, see :func:`lincae_core.ops.outputs.default_output`).
        keys: Keys to keep (default: every done track); an unknown key is an error.
        start_s: Start of the cut, rounded down to a latent frame boundary.
        duration_s: Length of the cut, rounded up to whole frames; ``samples`` is exact.
        options: How to run it (:class:`~lincae_core.ops.options.OpOptions`; origin: linear
            unless given); its fields may also be given as keywords (``jobs=2``).
    """
    opts = op_options(options, option_fields)
    s = open_store(src)
    geo = s.geometry
    plan = plan_select(
        s.table(),
        str(s.path),
        geo.sample_rate,
        geo.samples_per_frame,
        keys=keys,
        start_s=start_s,
        duration_s=duration_s,
    )
    args = {
        "keys": _keys_record(plan.keys) if keys is not None else None,
        "start_s": start_s,
        "duration_s": duration_s,
        "start_frame": plan.info["start_frame"],
    }
    return run_plan(plan, [s], out, op="select", args=args, options=opts, origin=opts.origin or "linear")
