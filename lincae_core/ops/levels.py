"""``gain``: the level of every latent: one gain, per track (loudness) or per frame (fades, envelopes).

``gain_store`` plans like a one-input mix (:func:`lincae_core.ops.plan.plan_mix`) and adds
per-track gains (``to_lufs``, from the loudness measured at encode time) and a
:class:`~lincae_core.ops.plan.FrameShape` (per-frame gains); the engine streams it. What each
relies on (arXiv:2510.23530, Sec. 3), and how well it holds for the default model, is in
``docs/editing.md``:

- a gain and ``to_lufs``: homogeneity (Eq. 1), one gain per track;
- fades and envelopes: homogeneity applied per latent frame (an extrapolation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.engine import run_plan
from lincae_core.ops.envelopes import read_envelope
from lincae_core.ops.forms import check_gain, default_origin
from lincae_core.ops.options import OpOptions, OpResult, op_options
from lincae_core.ops.plan import FrameShape, OpPlan, done_rows, plan_mix
from lincae_core.store import LatentStore, StoreLike, open_store
from lincae_core.store.layout import STATUS_DONE, STATUS_FAILED

__all__ = ["Envelope", "gain_plan", "gain_store"]

Envelope = str | os.PathLike | tuple[Sequence[float], Sequence[float]] | None


def _envelope(envelope: Envelope) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if envelope is None:
        return (), ()
    times, gains = read_envelope(envelope) if isinstance(envelope, (str, os.PathLike)) else envelope
    t, g = np.asarray(times, np.float64), np.asarray(gains, np.float64)
    if (
        t.ndim != 1
        or t.shape != g.shape
        or t.size == 0
        or not (np.diff(t) > 0).all()
        or not (np.isfinite(t).all() and np.isfinite(g).all())
    ):
        raise ConfigError("envelope: expected equal-length finite times (increasing) and gains")
    return tuple(t.tolist()), tuple(g.tolist())


def _loudness_gains(
    s: LatentStore, table: dict[str, np.ndarray], target: float, missing: str
) -> tuple[np.ndarray, int]:
    """Per-row gains ``10 ** ((target - L) / 20)``; unmeasured done rows refused or dropped."""
    if not math.isfinite(target):
        raise ConfigError(f"to_lufs: expected a finite target in LUFS, got {target!r}")
    loud = s.loudness()
    loud = np.full(s.n_tracks, np.nan, np.float32) if loud is None else loud
    rows = done_rows(table)
    bad = rows[~np.isfinite(loud[rows])]
    if bad.size and missing != "skip":
        shown = ", ".join(repr(str(table["key"][r])) for r in bad[:3])
        raise StoreMismatchError(
            f"{s.path}: expected a loudness measurement for every done track (encode measures it); "
            f"got none for {bad.size} tracks, e.g. {shown} (too short, silent, or encoded before "
            "lincae measured loudness); pass --missing skip (missing='skip') to leave them out"
        )
    table["status"][bad] = STATUS_FAILED  # this plan's copy only: dropped, counted as skipped
    return 10.0 ** ((target - loud.astype(np.float64)) / 20.0), int(bad.size)


def gain_plan(
    s: LatentStore,
    a: float,
    *,
    fade_in_s: float = 0.0,
    fade_out_s: float = 0.0,
    envelope: Envelope = None,
    to_lufs: float | None = None,
    missing: str = "error",
    max_gain: float | None = None,
) -> tuple[OpPlan, dict[str, Any]]:
    """Plan of ``lincae gain``: ``a``, times the loudness gain of each track (``to_lufs``, capped
    at ``max_gain``), times the per-frame envelope and fades. Returns the plan and its lineage
    args; the plan's info has ``gain_extremes``, the smallest and largest gain a track gets (fades
    to silence aside) and which track, and ``capped``, the tracks ``max_gain`` held back."""
    table = s.table()
    geo = s.geometry
    track_gain, skipped, capped = None, 0, 0
    if to_lufs is not None:
        track_gain, skipped = _loudness_gains(s, table, float(to_lufs), missing)
        if max_gain is not None:
            over = track_gain > max_gain
            capped = int((over & (table["status"] == STATUS_DONE)).sum())
            track_gain = np.where(over, max_gain, track_gain)
    plan = plan_mix([table], [str(s.path)], [a], geo.samples_per_frame)
    times, gains = _envelope(envelope)
    shape = FrameShape(
        geo.sample_rate, geo.samples_per_frame, times, gains, float(fade_in_s), float(fade_out_s)
    )
    info = dict(plan.info)
    if track_gain is not None:
        rows = np.array([s.index_of(k) for k in plan.keys], dtype=np.int64)
        plan.gains[0] *= track_gain[rows]
        info["skipped"] = skipped
        if max_gain is not None:
            info["capped"] = capped
    if plan.keys:
        env = np.asarray(gains if times else [1.0], np.float64)
        per_track = plan.gains[0]
        lo_i, hi_i = int(np.argmin(per_track)), int(np.argmax(per_track))
        info["gain_extremes"] = {
            "min": {"gain": float(per_track[lo_i] * env.min()), "key": plan.keys[lo_i]},
            "max": {"gain": float(per_track[hi_i] * env.max()), "key": plan.keys[hi_i]},
        }
    plan = replace(plan, shape=shape if shape.time_varying else None, info=info)
    args: dict[str, Any] = {"gain": a}  # a plain gain records only its gain, as it always did
    if shape.fade_in_s or shape.fade_out_s:
        args.update(fade_in_s=shape.fade_in_s, fade_out_s=shape.fade_out_s)
    if times:
        args["envelope"] = {"times": list(times), "gains": list(gains)}
    if to_lufs is not None:
        args.update(to_lufs=float(to_lufs), missing=missing)
        if max_gain is not None:
            args["max_gain"] = float(max_gain)
    return plan, args


def gain_store(
    src: StoreLike,
    out: str | os.PathLike | None = None,
    a: float = 1.0,
    *,
    fade_in_s: float = 0.0,
    fade_out_s: float = 0.0,
    envelope: Envelope = None,
    to_lufs: float | None = None,
    missing: str = "error",
    max_gain: float | None = None,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Write ``a * z`` of every done track of ``src`` to a new store ``out`` (homogeneity).

    With ``options.origin="affine"`` the result is ``a * z + (1 - a) * Enc(0)`` (docs/method.md
    §4.2); None takes the default of the store's model (:func:`~lincae_core.ops.forms.default_origin`).
    Optionally per track and per frame (``docs/editing.md``):
    ``to_lufs`` multiplies each track by ``10 ** ((to_lufs - L) / 20)`` from its loudness ``L``
    measured at encode time (a track without one is refused, or dropped with ``missing="skip"``
    and counted in ``skipped``), capped at ``max_gain`` when given (tracks held back are counted
    in ``capped``); ``envelope`` (a ``time_s,gain`` / ``time_s,db`` file, or
    ``(times, gains)``) and linear fades ``fade_in_s``/``fade_out_s`` multiply every latent
    frame by the curve at the frame's centre (homogeneity frame by frame: an extrapolation).

    Args:
        src: Input store (path or open store).
        out: Output path (must not exist unless ``options.overwrite``; default: beside ``src``,
            named after it, see :func:`lincae_core.ops.outputs.default_output`).
        a: Amplitude factor (use :func:`~lincae_core.ops.algebra.db_to_amplitude` for decibels).
        options: How to run it (:class:`~lincae_core.ops.options.OpOptions`); its fields may
            also be given as keywords (``jobs=2``).
    """
    opts = op_options(options, option_fields)
    s = open_store(src)
    a = check_gain("gain", a)
    plan, args = gain_plan(
        s,
        a,
        fade_in_s=fade_in_s,
        fade_out_s=fade_out_s,
        envelope=envelope,
        to_lufs=to_lufs,
        missing=missing,
        max_gain=max_gain,
    )
    return run_plan(
        plan, [s], out, op="gain", args=args, options=opts, origin=opts.origin or default_origin(s)
    )
