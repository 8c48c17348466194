"""``mix`` and ``extract`` (mixing): weighted sums of paired tracks of several stores (additivity).

``mix_stores`` pairs the done tracks of ``K`` stores (by key, by position, or at random with a
recorded seed) and writes ``Σ g_k z_k`` (arXiv:2510.23530, Eq. 2); ``extract_store`` is the
paper's latent-arithmetic separation ``z_mix − Σ z_minus`` (Sec. 4.5, Fig. 3), a mix with gains
``[1, −1, …]``. Planned by :func:`lincae_core.ops.plan.plan_mix` (pure), run by the engine
(memory does not grow with the store). The per-array math is :mod:`lincae_core.ops.algebra`.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from typing import Any

from lincae_core.errors import ConfigError
from lincae_core.ops.engine import run_plan
from lincae_core.ops.forms import check_gain, default_origin
from lincae_core.ops.options import OpOptions, OpResult, op_options
from lincae_core.ops.plan import RANDOM_GAIN_RANGE, plan_mix
from lincae_core.store import LatentStore, StoreLike, open_store

log = logging.getLogger(__name__)

__all__ = ["extract_store", "mix_stores"]


def mix_stores(
    srcs: Sequence[StoreLike],
    out: str | os.PathLike | None = None,
    gains: Sequence[float] | None = None,
    *,
    pair: str = "key",
    seed: int | None = None,
    count: int | None = None,
    gain_range: tuple[float, float] | None = None,
    length: str = "shortest",
    missing: str = "error",
    force: bool = False,
    op: str = "mix",
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Write ``sum_k g_k z_k`` over paired tracks of ``K`` stores (additivity, Eq. 2).

    Args:
        srcs: Input stores; all must share format version, geometry and channels, and model
            (the model check, only, can be overridden by ``force``).
        out: Output path (default: beside the first input, ``a+b.mix.zarr``).
        gains: One gain for all inputs or one per input (default 1).
        pair: ``"key"`` (same key in every input; output keys are the keys), ``"position"``
            (i-th done track of each input; keys of the first), or ``"random"`` (``count``
            mixes of uniformly drawn tracks, keys ``mix-00000000``..., each input's gain times
            a factor drawn uniformly from ``gain_range``; reproducible with ``seed``).
        seed: Seed of the random pairing (drawn, and returned in the result, when None).
        count: Number of random mixes (default: done tracks of the first input).
        gain_range: ``(lo, hi)`` of the random gain factors (default ``(0.5, 1.0)``).
            ``seed``, ``count`` and ``gain_range`` are refused unless ``pair="random"``.
        length: ``"shortest"``, ``"longest"`` (shorter inputs padded with zero latents) or
            ``"first"``; the output ``samples`` follow the same policy.
        missing: ``"error"``: a key (or position) absent from some input is an error naming
            the first few; ``"skip"``: drop them, the count is in the result (``skipped``).
        force: Combine stores of different models.
        op: Operation name recorded in the lineage.
        options: How to run it (:class:`~lincae_core.ops.options.OpOptions`: workers, output
            dtype, ``origin`` — ``"affine"`` adds ``(1 − Σ g_k) Enc(0)``, exact for an affine
            encoder, docs/method.md §4.2; None: the default of the first store's model); its
            fields may also be given as keywords (``jobs=2``).

    The sources and gains of every output track are recorded in the output store
    (:meth:`LatentStore.sources`).

    Raises:
        StoreMismatchError: Incompatible stores or missing keys.
        ConfigError: Bad gains or options.
    """
    opts = op_options(options, option_fields)
    stores = [open_store(s) for s in srcs]
    if not stores:
        raise ConfigError("mix: expected at least one input store")
    if pair != "random":
        given = [
            n for n, v in (("seed", seed), ("count", count), ("gain_range", gain_range)) if v is not None
        ]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with pair='random' (--pair random)")
    elif seed is None:
        seed = secrets.randbits(63)  # drawn, recorded and returned: every random mix is reproducible
    gain_range = RANDOM_GAIN_RANGE if gain_range is None else gain_range
    for s in stores[1:]:
        stores[0].compatible_with(s, force=force)
    g = [1.0] * len(stores) if not gains else [check_gain("gain", x) for x in gains]
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
    _warn_misaligned(plan.info, stores, op, length)
    args = {"gains": g, "pair": pair, "length": length, "missing": missing, "force": force}
    if pair == "random":
        args.update(seed=seed, count=count, gain_range=list(gain_range))
    origin = opts.origin or default_origin(stores[0])
    return run_plan(plan, stores, out, op=op, args=args, options=opts, origin=origin)


def select_offset_frames(store: LatentStore) -> int:
    """Frames cut from the start of the tracks by the ``select --start`` operations in the
    store's lineage (0 for a store whose tracks start where their audio started)."""
    return sum(
        int((e.get("args") or {}).get("start_frame") or 0) for e in store.lineage if e.get("op") == "select"
    )


def _warn_misaligned(info: dict[str, Any], stores: Sequence[LatentStore], op: str, length: str) -> None:
    """Warn when tracks paired by key or position do not line up: different lengths, or inputs cut
    at different start times (``select --start``)."""
    offsets = [select_offset_frames(s) for s in stores]
    if len(set(offsets)) > 1:
        cut = ", ".join(f"{s.path}: {o} frames" for s, o in zip(stores, offsets, strict=True))
        log.warning(
            "%s: the inputs start at different times (cut from the start by select --start: %s); "
            "paired tracks are misaligned by that much: cut the other inputs the same way",
            op,
            cut,
        )
    mm = info.get("length_mismatch")
    if mm:
        log.warning(
            "%s: %d paired tracks differ in length (e.g. %r: %s frames); --length %s made them %s",
            op,
            mm["tracks"],
            mm["example"],
            " vs ".join(map(str, mm["frames"])),
            length,
            "as long as the first input's" if length == "first" else f"the {length} of each pair",
        )


def extract_store(
    mix_src: StoreLike,
    minus: Sequence[StoreLike],
    out: str | os.PathLike | None = None,
    *,
    length: str = "first",
    missing: str = "error",
    force: bool = False,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> OpResult:
    """Write ``z_mix - sum z_minus`` per key: latent-arithmetic separation (Sec. 4.5, Fig. 3).

    Args:
        mix_src: Store of mixtures.
        minus: Stores to subtract (e.g. the accompaniment stems), paired by key.
        out: Output path.
        length: Length policy (default ``"first"``: the mixture's length).
        missing, force: As in :func:`mix_stores`.
        options: As in :func:`mix_stores` (affine: ``z_mix − Σ z_k + n · Enc(0)`` for ``n``
            subtracted stores).
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
        force=force,
        op="extract",
        options=op_options(options, option_fields),
    )
