"""``extract --stem``: every stem of a mixture at once, one store per stem in a new folder.

The paper's leave-one-out latent subtraction (arXiv:2510.23530 Sec. 4.5) or its
mixture-consistent form (``consistent=True``), whose estimates sum to the mixture's latent. Each
stem is a mix with :func:`stem_gains`, planned by :func:`lincae_core.ops.plan.plan_mix` and run
by the engine into a folder built beside and renamed into place (bounded memory, lineage).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lincae_core.errors import ConfigError, LincaeError
from lincae_core.location import Location, as_location, resolved
from lincae_core.ops.engine import run_plan
from lincae_core.ops.forms import default_origin
from lincae_core.ops.options import OpOptions, OpResult, StemsResult, op_options
from lincae_core.ops.plan import plan_mix
from lincae_core.publish import building_dir, check_free, free_name
from lincae_core.store import LatentStore, StoreLike, open_store

__all__ = ["extract_stems", "stem_gains"]


def stem_gains(n: int, i: int, consistent: bool) -> list[float]:
    """Gains on ``[z_mix, z_1, ..., z_n]`` of the estimate of stem ``i`` (0-based) of ``n``.

    Plain (the paper's leave-one-out subtraction, Sec. 4.5): ``ẑ_i = z_mix − Σ_{j≠i} z_j``.
    Consistent: the plain estimates plus an equal share of their residual
    ``r = z_mix − Σ_i ẑ_i`` (mixture consistency), which simplifies to
    ``ẑ_i = z_i + (z_mix − Σ_j z_j) / n``; then ``Σ_i ẑ_i = z_mix``.
    """
    if consistent:
        return [1.0 / n] + [(1.0 - 1.0 / n) if j == i else -1.0 / n for j in range(n)]
    return [1.0] + [0.0 if j == i else -1.0 for j in range(n)]


def _stem_stores(mix: StoreLike, stems: Mapping[str, StoreLike], force: bool) -> list[LatentStore]:
    if len(stems) < 2:
        raise ConfigError(f"extract: expected at least two stems (--stem NAME=STORE); got {len(stems)}")
    for name in stems:
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"extract: expected stem names usable as file names; got {name!r}")
    stores = [open_store(mix), *(open_store(s) for s in stems.values())]
    for s in stores[1:]:
        stores[0].compatible_with(s, force=force)
    return stores


def _stems_dir(
    mix: LatentStore, out_dir: str | os.PathLike | None, consistent: bool, overwrite: bool
) -> Location:
    if out_dir is None:
        base = as_location(mix.path)
        stem = base.name.removesuffix(".zarr") + (".consistent" if consistent else ".stems")
        return free_name(base.parent, stem)
    return check_free(out_dir, overwrite)


def extract_stems(
    mix: StoreLike,
    stems: Mapping[str, StoreLike],
    out_dir: str | os.PathLike | None = None,
    *,
    consistent: bool = False,
    length: str = "first",
    missing: str = "error",
    force: bool = False,
    options: OpOptions | None = None,
    **option_fields: Any,
) -> StemsResult:
    """Estimate every stem of a mixture by latent subtraction: one store per stem in ``out_dir``.

    Each stem's store ``OUT_DIR/NAME.zarr`` holds, per key of ``mix``, the plain leave-one-out
    estimate ``z_mix − Σ_{j≠i} z_j`` (arXiv:2510.23530 Sec. 4.5, given the other stems' latents)
    or, with ``consistent``, ``z_i + (z_mix − Σ_j z_j) / n``: the plain estimates with their
    residual distributed equally, so that the estimates sum to the mixture's latent (to float32
    rounding; the output dtype defaults to float32 then). With the affine origin each estimate
    gets ``(1 − Σ g)·Enc(0)`` like every operation, and consistency holds for the centred latents:
    ``Σ_i (ẑ_i − Enc(0)) = z_mix − Enc(0)`` (an affine encoder's additivity). Relies on additivity
    (Eq. 2); the per-stem formula and the stem names are in each store's lineage.

    Args:
        mix: Store of mixtures.
        stems: ``{name: store}`` of ``n >= 2`` stems, paired with ``mix`` by key.
        out_dir: New directory for the stem stores (default beside ``mix``: ``MIX.stems`` or,
            consistent, ``MIX.consistent``; a taken name gets a suffix, ``MIX.stems-2``).
        consistent: Mixture-consistent estimates instead of the plain ones.
        length, missing, force: As in :func:`~lincae_core.ops.mixing.mix_stores`.
        options: As in :func:`~lincae_core.ops.mixing.mix_stores`; ``overwrite`` replaces
            ``out_dir``; its fields may also be given as keywords (``jobs=2``).
    """
    opts = op_options(options, option_fields)
    stores = _stem_stores(mix, stems, force)
    names = list(stems)
    origin = opts.origin or default_origin(stores[0])
    dtype = opts.dtype or ("float32" if consistent else None)
    final = _stems_dir(stores[0], out_dir, consistent, opts.overwrite)
    for s in stores:
        if str(resolved(s.path)).startswith(str(resolved(final)).rstrip("/") + "/"):
            raise LincaeError(f"{final} holds the input {s.path}; write the stems elsewhere")
    inner = replace(opts, overwrite=False)
    results: dict[str, OpResult] = {}
    with building_dir(final, replace=opts.overwrite, direct=True) as building:
        tmp = building.tmp
        tmp.mkdir()
        for i, name in enumerate(names):
            g = stem_gains(len(names), i, consistent)
            plan = plan_mix(
                [s.table() for s in stores],
                [str(s.path) for s in stores],
                g,
                stores[0].geometry.samples_per_frame,
                length=length,
                missing=missing,
            )
            args = {
                "gains": g,
                "pair": "key",
                "length": length,
                "missing": missing,
                "force": force,
                "stem": name,
                "stems": names,
                "consistent": consistent,
            }
            r = run_plan(
                plan,
                stores,
                tmp / f"{name}.zarr",  # new, in the new folder: nothing to overwrite
                op="extract",
                args=args,
                options=inner,
                origin=origin,
                dtype=dtype,
            )
            results[name] = replace(r, out=str(final / f"{name}.zarr"))
    return StemsResult(out=str(final), consistent=consistent, origin=origin, stems=results)
