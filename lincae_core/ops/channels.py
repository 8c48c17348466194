"""Channel edits of stereo stores: ``pan`` (per-channel gains) and ``midside`` (L/R <-> M/S).

Both apply one ``[C, C]`` channel matrix to every frame
(:class:`~lincae_core.ops.plan.FrameShape` with ``matrix``), which rests on homogeneity and
additivity (arXiv:2510.23530, Eqs. 1-2) across the two latent channels, which the model encodes
and decodes independently (stereo = two mono signals). How well they hold: ``docs/editing.md``.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any

from lincae_core.errors import ConfigError, StoreMismatchError
from lincae_core.ops.engine import run_plan
from lincae_core.ops.options import OpOptions, OpResult, op_options
from lincae_core.ops.plan import FrameShape, OpPlan, plan_mix
from lincae_core.store import LatentStore, StoreLike, open_store

__all__ = ["LR_MATRIX", "MS_MATRIX", "midside_store", "pan_gains", "pan_store", "stereo_mode"]

# Mid/side with halves: M = (L + R) / 2, S = (L - R) / 2, inverse L = M + S, R = M - S. With
# float16 L/R and float32 M/S every step is exact in float32 (halving and the sums are exact).
MS_MATRIX = ((0.5, 0.5), (0.5, -0.5))
LR_MATRIX = ((1.0, 1.0), (1.0, -1.0))


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law: ``(cos θ, sin θ)``, ``θ = (pan + 1) π / 4``, ``pan`` in [-1, 1].

    ``-1`` keeps only the left channel, ``+1`` only the right, ``0`` scales both by 1/√2 (-3 dB);
    ``gL² + gR² = 1`` everywhere.
    """
    if not (math.isfinite(pan) and -1.0 <= pan <= 1.0):
        raise ConfigError(f"pan: expected a number in [-1, 1], got {pan!r}")
    theta = (pan + 1.0) * math.pi / 4.0
    return math.cos(theta), math.sin(theta)


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
    out: str | os.PathLike | None = None,
    *,
    pan: float | None = None,
    channel_gains: tuple[float, float] | None = None,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Per-channel gains of a stereo store: ``z_L <- gL z_L``, ``z_R <- gR z_R`` (homogeneity).

    Args:
        src: A stereo (left/right) store; mono and mid/side stores are refused.
        out: Output path (default beside ``src``: ``S.pan.zarr``).
        pan: Constant-power pan in [-1, 1] (:func:`pan_gains`).
        channel_gains: ``(gL, gR)`` amplitudes instead of ``pan``.
        options: How to run it (:class:`~lincae_core.ops.options.OpOptions`; origin: linear
            unless given); its fields may also be given as keywords (``jobs=2``).
    """
    opts = op_options(options, option_fields)
    s = open_store(src)
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
    args = {"pan": pan, "channel_gains": [gl, gr]}
    return run_plan(plan, [s], out, op="pan", args=args, options=opts, origin=opts.origin or "linear")


def midside_store(
    src: StoreLike,
    out: str | os.PathLike | None,
    to: str,
    *,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Convert a stereo store between left/right and mid/side latents (additivity, homogeneity).

    ``to="ms"``: ``M = (L + R) / 2``, ``S = (L - R) / 2`` (channel 0 = M, 1 = S), written as
    float32 (unless ``options.dtype``) so that ``to="lr"`` (``L = M + S``, ``R = M - S``)
    restores the left/right latents exactly, in the dtype they had (recorded in the lineage).
    The store's mode is read from its lineage: converting to the mode it is already in is refused.
    """
    opts = op_options(options, option_fields)
    s = open_store(src)
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
        dtype, args = opts.dtype or "float32", {"to": "ms", "lr_dtype": s.dtype}
    else:
        last = next(e for e in reversed(s.lineage) if e.get("op") == "midside")
        dtype, args = opts.dtype or last["args"].get("lr_dtype", s.dtype), {"to": "lr"}
    plan = _channel_plan(s, MS_MATRIX if to == "ms" else LR_MATRIX)
    origin = opts.origin or "linear"
    return run_plan(plan, [s], out, op="midside", args=args, options=opts, origin=origin, dtype=dtype)
