"""Latent algebra on whole latent stores: gain, mix, extract and select, streamed chunk by chunk.

Each operation plans its output with :mod:`lincae_core.ops.plan` (pure) and runs it with
:mod:`lincae_core.ops.engine` (memory does not grow with the store; parallel with joblib); only
tracks whose status is done are used. The per-array math is :mod:`lincae_core.ops.algebra`.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from lincae_core.errors import ConfigError
from lincae_core.ops import engine as ops_engine
from lincae_core.ops.edits import Envelope, gain_plan
from lincae_core.ops.plan import RANDOM_GAIN_RANGE, plan_mix, plan_select
from lincae_core.store import LatentStore

__all__ = [
    "default_origin",
    "extract_store",
    "gain_store",
    "mix_stores",
    "operation_warnings",
    "select_store",
]

StoreLike = LatentStore | str | os.PathLike
Progress = Callable[[int], None] | None
MAX_BLOCK = ops_engine.DEFAULT_MAX_BLOCK_FRAMES


def operation_warnings(srcs: Sequence[StoreLike], op: str, gains: Sequence[float] = ()) -> list[str]:
    """Warnings for a latent operation on these stores, from the linearity their model measured.

    ``gain`` relies on homogeneity, ``mix`` and ``extract`` on additivity: each store records its
    model's measured figures and trained gain range at encode time (``model.card`` attribute), and
    :func:`lincae_core.linearity.linearity_warnings` compares them with documented thresholds.
    """
    from lincae_core.linearity import linearity_warnings

    first = _open(srcs[0])
    return linearity_warnings({"model_id": first.model_id, **first.model_card}, op, gains)


def default_origin(store: LatentStore) -> str:
    """The origin form an operation uses by default: the one the store's model measured closer to
    the audio-domain operation (``origin_default`` in its card, docs/linearity.md), else linear."""
    choice = store.model_card.get("origin_default")
    return choice if choice in ("linear", "affine") else "linear"


def _open(s: StoreLike) -> LatentStore:
    return s if isinstance(s, LatentStore) else LatentStore.open(s)


def _check_gain(name: str, a: float) -> float:
    if not isinstance(a, (int, float)) or not math.isfinite(a):
        raise ConfigError(f"{name}: expected a finite number, got {a!r}")
    return float(a)


def gain_store(
    src: StoreLike,
    out: str | os.PathLike | None,
    a: float = 1.0,
    *,
    jobs: int = 1,
    overwrite: bool = False,
    progress: Progress = None,
    dtype: str | None = None,
    max_block_frames: int = MAX_BLOCK,
    require_complete: bool = False,
    origin: str | None = None,
    scheduler: str | None = None,
    fade_in_s: float = 0.0,
    fade_out_s: float = 0.0,
    envelope: Envelope = None,
    to_lufs: float | None = None,
    missing: str = "error",
) -> dict[str, Any]:
    """Write ``a * z`` of every done track of ``src`` to a new store ``out`` (homogeneity).

    With ``origin="affine"`` the result is ``a * z + (1 - a) * Enc(0)`` (docs/method.md §4.2);
    None takes the default of the store's model (:func:`default_origin`).
    Optionally per track and per frame (see :mod:`lincae_core.ops.edits`, ``docs/editing.md``):
    ``to_lufs`` multiplies each track by ``10 ** ((to_lufs - L) / 20)`` from its loudness ``L``
    measured at encode time (a track without one is refused, or dropped with ``missing="skip"``
    and counted in ``skipped``); ``envelope`` (a ``time_s,gain`` / ``time_s,db`` file, or
    ``(times, gains)``) and linear fades ``fade_in_s``/``fade_out_s`` multiply every latent
    frame by the curve at the frame's centre (homogeneity frame by frame: an extrapolation).

    Args:
        src: Input store (path or open store).
        out: Output path (must not exist unless ``overwrite``; default: beside ``src``, named
            after it, see :func:`lincae_core.ops.engine.default_output`).
        require_complete: As in :func:`mix_stores`.
        a: Amplitude factor (use :func:`db_to_amplitude` for decibels).
        jobs: joblib workers (-1: all cores).
        scheduler: Run on a Dask cluster instead: its address or scheduler file
            (:mod:`lincae_core.ops.cluster`); the output is byte-identical.
        overwrite: Replace an existing ``out``.
        progress: Called with the number of frames written after each unit of work.
        dtype: Output dtype (default: the input's).
        max_block_frames: Largest block computed or read at once (bounds memory).

    Returns:
        A summary dict (``out``, ``tracks``, ``frames``, ...).
    """
    s = _open(src)
    a = _check_gain("gain", a)
    plan, args = gain_plan(
        s, a, fade_in_s=fade_in_s, fade_out_s=fade_out_s, envelope=envelope, to_lufs=to_lufs, missing=missing
    )
    return ops_engine.run_plan(
        plan,
        [s],
        out,
        op="gain",
        args=args,
        dtype=dtype,
        jobs=jobs,
        overwrite=overwrite,
        progress=progress,
        max_block_frames=max_block_frames,
        require_complete=require_complete,
        origin=origin or default_origin(s),
        scheduler=scheduler,
    )


def mix_stores(
    srcs: Sequence[StoreLike],
    out: str | os.PathLike | None,
    gains: Sequence[float] | None = None,
    *,
    pair: str = "key",
    seed: int | None = None,
    count: int | None = None,
    gain_range: tuple[float, float] | None = None,
    length: str = "shortest",
    missing: str = "error",
    jobs: int = 1,
    force: bool = False,
    overwrite: bool = False,
    progress: Progress = None,
    dtype: str | None = None,
    max_block_frames: int = MAX_BLOCK,
    op: str = "mix",
    require_complete: bool = False,
    origin: str | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Write ``sum_k g_k z_k`` over paired tracks of ``K`` stores (additivity, Eq. 2).

    Args:
        srcs: Input stores; all must share format version, geometry and channels, and model
            (the model check, only, can be overridden by ``force``).
        out: Output path.
        gains: One gain for all inputs or one per input (default 1).
        pair: ``"key"`` (same key in every input; output keys are the keys), ``"position"``
            (i-th done track of each input; keys of the first), or ``"random"`` (``count``
            mixes of uniformly drawn tracks, keys ``mix-00000000``..., each input's gain times
            a factor drawn uniformly from ``gain_range``; reproducible with ``seed``).
        seed: Seed of the random pairing (drawn, and returned in the summary, when None).
        count: Number of random mixes (default: done tracks of the first input).
        gain_range: ``(lo, hi)`` of the random gain factors (default ``(0.5, 1.0)``).
            ``seed``, ``count`` and ``gain_range`` are refused unless ``pair="random"``.
        length: ``"shortest"``, ``"longest"`` (shorter inputs padded with zero latents) or
            ``"first"``; the output ``samples`` follow the same policy.
        missing: ``"error"``: a key (or position) absent from some input is an error naming
            the first few; ``"skip"``: drop them, the count is in the summary (``skipped``).
        jobs: joblib workers, as in :func:`gain_store`.
        force: Combine stores of different models.
        overwrite: Replace an existing ``out``.
        progress: Called with the number of frames written after each unit of work.
        dtype: Output dtype (default: the first input's).
        max_block_frames: Largest block computed or read at once (bounds memory).
        op: Operation name recorded in the lineage.
        require_complete: Refuse inputs with planned or failed tracks (by default they are left
            out and counted in the summary's ``left_out``).
        origin: ``"linear"`` (``Σ g_k z_k``) or ``"affine"`` (``+ (1 − Σ g_k) Enc(0)``, exact for an
            affine encoder, docs/method.md §4.2); None: the default of the first store's model.

    The sources and gains of every output track are recorded in the output store
    (:meth:`LatentStore.sources`).

    Raises:
        StoreMismatchError: Incompatible stores or missing keys.
        ConfigError: Bad gains or options.
    """
    stores = [_open(s) for s in srcs]
    if not stores:
        raise ConfigError("mix: expected at least one input store")
    if pair != "random":
        options = (("seed", seed), ("count", count), ("gain_range", gain_range))
        given = [n for n, v in options if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with pair='random' (--pair random)")
    elif seed is None:
        seed = secrets.randbits(63)  # drawn, recorded and returned: every random mix is reproducible
    gain_range = RANDOM_GAIN_RANGE if gain_range is None else gain_range
    for s in stores[1:]:
        stores[0].compatible_with(s, force=force)
    g = [1.0] * len(stores) if not gains else [_check_gain("gain", x) for x in gains]
    if len(g) == 1:
        g = g * len(stores)
    if len(g) != len(stores):
        raise ConfigError(f"gains: expected 1 or {len(stores)} gains (one per input), got {len(g)}")
    plan = plan_mix(
        [s.table() for s in stores],
        [str(s.path) for s in stores],
        g,
        stores[0].geometry.samples_per_frame,
        pair=pair,
        length=length,
        missing=missing,
        seed=seed,
        count=count,
        gain_range=(float(gain_range[0]), float(gain_range[1])),
    )
    args = {"gains": g, "pair": pair, "length": length, "missing": missing, "force": force}
    if pair == "random":
        args.update(seed=seed, count=count, gain_range=list(gain_range))
    return ops_engine.run_plan(
        plan,
        stores,
        out,
        op=op,
        args=args,
        dtype=dtype,
        jobs=jobs,
        overwrite=overwrite,
        progress=progress,
        max_block_frames=max_block_frames,
        require_complete=require_complete,
        origin=origin or default_origin(stores[0]),
        scheduler=scheduler,
    )


def extract_store(
    mix_src: StoreLike,
    minus: Sequence[StoreLike],
    out: str | os.PathLike | None,
    *,
    length: str = "first",
    missing: str = "error",
    **kwargs: Any,
) -> dict[str, Any]:
    """Write ``z_mix - sum z_minus`` per key: latent-arithmetic separation (Sec. 4.5, Fig. 3).

    Args:
        mix_src: Store of mixtures.
        minus: Stores to subtract (e.g. the accompaniment stems), paired by key.
        out: Output path.
        length: Length policy (default ``"first"``: the mixture's length).
        missing: As in :func:`mix_stores`.
        **kwargs: ``jobs``, ``force``, ``overwrite``, ``progress``, ``dtype``,
            ``max_block_frames``, ``require_complete``, ``origin`` as in :func:`mix_stores`
            (affine: ``z_mix − Σ z_k + n · Enc(0)`` for ``n`` subtracted stores).
    """
    if not minus:
        raise ConfigError("extract: expected at least one store to subtract (--minus)")
    return mix_stores(
        [mix_src, *minus],
        out,
        [1.0] + [-1.0] * len(minus),
        pair="key",
        length=length,
        missing=missing,
        op="extract",
        **kwargs,
    )


def _keys_record(keys: Sequence[str]) -> dict[str, Any]:
    """Lineage form of a key list: its SHA-256 and count, and the keys when few."""
    digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()
    return {"count": len(keys), "sha256": digest, **({"keys": list(keys)} if len(keys) <= 1000 else {})}


def select_store(
    src: StoreLike,
    out: str | os.PathLike | None,
    *,
    keys: Sequence[str] | None = None,
    start_s: float | None = None,
    duration_s: float | None = None,
    jobs: int = 1,
    overwrite: bool = False,
    progress: Progress = None,
    max_block_frames: int = MAX_BLOCK,
    require_complete: bool = False,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Write a subset of ``src``: the done tracks in ``keys`` (in that order), cut in time.

    Args:
        src: Input store.
        out: Output path (default: beside ``src``, see :func:`lincae_core.ops.engine.default_output`).
        require_complete: As in :func:`mix_stores`.
        keys: Keys to keep (default: every done track); an unknown key is an error.
        start_s: Start of the cut, rounded down to a latent frame boundary.
        duration_s: Length of the cut, rounded up to whole frames; ``samples`` is exact.
        jobs: joblib workers, as in :func:`gain_store`.
        overwrite: Replace an existing ``out``.
        progress: Called with the number of frames written after each unit of work.
        max_block_frames: Largest block computed or read at once (bounds memory).
    """
    s = _open(src)
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
    return ops_engine.run_plan(
        plan,
        [s],
        out,
        op="select",
        args=args,
        jobs=jobs,
        overwrite=overwrite,
        progress=progress,
        max_block_frames=max_block_frames,
        require_complete=require_complete,
        scheduler=scheduler,
    )
