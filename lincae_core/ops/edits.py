"""Latent edits beyond mix and gain: time-varying gains, loudness normalization, pan, mid/side.

Each edit plans like ``gain`` (:func:`lincae_core.ops.plan.plan_mix` over one store) and adds a
:class:`~lincae_core.ops.shape.FrameShape` or per-track gains; the engine streams it. What each
edit relies on (arXiv:2510.23530, Sec. 3), and how well it holds for the default model, is in
``docs/editing.md``:

- fades and envelopes: homogeneity (Eq. 1) applied per latent frame (an extrapolation);
- ``to_lufs``: homogeneity with one gain per track, from the loudness measured at encode time;
- pan (per-channel gains) and mid/side (sums and differences of the two channels):
  homogeneity and additivity (Eqs. 1-2) on the independently coded channels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops import engine as ops_engine
from lincae_core.ops.plan import OpPlan, done_rows, plan_mix
from lincae_core.ops.shape import LR_MATRIX, MS_MATRIX, FrameShape, pan_gains, read_envelope
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_FAILED

__all__ = ["gain_plan", "midside_store", "pan_store", "stereo_mode"]

StoreLike = LatentStore | str | os.PathLike
Envelope = str | os.PathLike | tuple[Sequence[float], Sequence[float]] | None


def _open(s: StoreLike) -> LatentStore:
    return s if isinstance(s, LatentStore) else LatentStore.open(s)


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
) -> tuple[OpPlan, dict[str, Any]]:
    """Plan of ``lincae gain``: ``a``, times the loudness gain of each track (``to_lufs``), times
    the per-frame envelope and fades. Returns the plan and its lineage args."""
    table = s.table()
    geo = s.geometry
    track_gain, skipped = None, 0
    if to_lufs is not None:
        track_gain, skipped = _loudness_gains(s, table, float(to_lufs), missing)
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
    plan = replace(plan, shape=shape if shape.time_varying else None, info=info)
    args: dict[str, Any] = {"gain": a}  # a plain gain records only its gain, as it always did
    if shape.fade_in_s or shape.fade_out_s:
        args.update(fade_in_s=shape.fade_in_s, fade_out_s=shape.fade_out_s)
    if times:
        args["envelope"] = {"times": list(times), "gains": list(gains)}
    if to_lufs is not None:
        args.update(to_lufs=float(to_lufs), missing=missing)
    return plan, args


def stereo_mode(s: LatentStore) -> str:
    """``"ms"`` when the latest ``midside`` edit in the lineage converted to mid/side, else ``"lr"``."""
    for entry in reversed(s.lineage):
        if entry.get("op") == "midside":
            return str(entry.get("args", {}).get("to", "lr"))
    return "lr"


def _require_stereo(s: LatentStore, op: str) -> None:
    if s.channels != 2:
        raise StoreMismatchError(
            f"{s.path}: {op} needs a stereo store (encode --channels stereo); "
            f"expected 2 latent channels, got {s.channels}"
        )


def _channel_plan(s: LatentStore, matrix: tuple[tuple[float, ...], ...]) -> OpPlan:
    geo = s.geometry
    plan = plan_mix([s.table()], [str(s.path)], [1.0], geo.samples_per_frame)
    return replace(plan, shape=FrameShape(geo.sample_rate, geo.samples_per_frame, matrix=matrix))


def pan_store(
    src: StoreLike,
    out: str | os.PathLike | None,
    *,
    pan: float | None = None,
    channel_gains: tuple[float, float] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Per-channel gains of a stereo store: ``z_L <- gL z_L``, ``z_R <- gR z_R`` (homogeneity).

    Args:
        src: A stereo (left/right) store; mono and mid/side stores are refused.
        out: Output path (default beside ``src``: ``S.pan.zarr``).
        pan: Constant-power pan in [-1, 1] (:func:`~lincae_core.ops.shape.pan_gains`).
        channel_gains: ``(gL, gR)`` amplitudes instead of ``pan``.
        **kwargs: ``jobs``, ``overwrite``, ``progress``, ``dtype``, ``max_block_frames``,
            ``require_complete`` as in :func:`~lincae_core.ops.stores.gain_store`.
    """
    s = _open(src)
    _require_stereo(s, "pan")
    if stereo_mode(s) != "lr":
        raise StoreMismatchError(
            f"{s.path} holds mid/side latents; convert it back first (lincae midside --to lr)"
        )
    if (pan is None) == (channel_gains is None):
        raise ConfigError("pan: expected exactly one of pan or channel_gains")
    gl, gr = pan_gains(float(pan)) if pan is not None else (float(g) for g in channel_gains)  # type: ignore[union-attr]
    if not (math.isfinite(gl) and math.isfinite(gr)):
        raise ConfigError(f"channel_gains: expected finite numbers, got {channel_gains!r}")
    plan = _channel_plan(s, ((gl, 0.0), (0.0, gr)))
    return ops_engine.run_plan(
        plan, [s], out, op="pan", args={"pan": pan, "channel_gains": [gl, gr]}, **kwargs
    )


def midside_store(
    src: StoreLike, out: str | os.PathLike | None, to: str, *, dtype: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Convert a stereo store between left/right and mid/side latents (additivity, homogeneity).

    ``to="ms"``: ``M = (L + R) / 2``, ``S = (L - R) / 2`` (channel 0 = M, 1 = S), written as
    float32 so that ``to="lr"`` (``L = M + S``, ``R = M - S``) restores the left/right latents
    exactly, in the dtype they had (recorded in the lineage). The store's mode is read from its
    lineage: converting to the mode it is already in is refused.
    """
    s = _open(src)
    _require_stereo(s, "midside")
    if to not in ("ms", "lr"):
        raise ConfigError(f"to: expected 'ms' or 'lr', got {to!r}")
    mode = stereo_mode(s)
    if mode == to:
        have, want = ("mid/side", "left/right") if to == "ms" else ("left/right", "mid/side")
        raise StoreMismatchError(
            f"{s.path} holds {have} latents already (see its lineage); expected a {want} store for --to {to}"
        )
    if to == "ms":
        dtype, args = dtype or "float32", {"to": "ms", "lr_dtype": s.dtype}
    else:
        last = next(e for e in reversed(s.lineage) if e.get("op") == "midside")
        dtype, args = dtype or last["args"].get("lr_dtype", s.dtype), {"to": "lr"}
    plan = _channel_plan(s, MS_MATRIX if to == "ms" else LR_MATRIX)
    return ops_engine.run_plan(plan, [s], out, op="midside", args=args, dtype=dtype, **kwargs)
