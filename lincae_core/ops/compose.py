"""Store operations that compose several tracks or stores: ``concat`` and mixture-consistent stems.

- :func:`concat_store`: tracks of one store joined end to end on the latent frame grid, with an
  optional linear crossfade in the latent domain (planned by :mod:`lincae_core.ops.timeline`;
  relies on homogeneity and additivity, arXiv:2510.23530 Eqs. 1-2);
- :func:`extract_stems`: one estimate per stem of a mixture, the paper's leave-one-out latent
  subtraction (Sec. 4.5) or its mixture-consistent form (``consistent=True``), whose estimates sum
  to the mixture's latent.

Both plan purely and run through :func:`lincae_core.ops.engine.run_plan` (bounded memory, lineage,
outputs built beside and renamed into place).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lincae_core.errors import ConfigError, LincaeError
from lincae_core.ops import engine as ops_engine
from lincae_core.ops.plan import plan_mix
from lincae_core.ops.stores import default_origin
from lincae_core.ops.timeline import (
    Entries,
    concat_record,
    crossfade_frames,
    parse_concat_list,
    plan_concat,
)
from lincae_core.publish import building_dir, check_free, free_name
from lincae_core.store import LatentStore

__all__ = ["concat_store", "extract_stems", "stem_gains"]

StoreLike = LatentStore | str | os.PathLike


def _open(s: StoreLike) -> LatentStore:
    return s if isinstance(s, LatentStore) else LatentStore.open(s)


def concat_store(
    src: StoreLike,
    out: str | os.PathLike | None,
    entries: Entries | str | os.PathLike,
    *,
    crossfade_s: float = 0.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Join tracks of ``src`` end to end on the latent frame grid, with a latent crossfade.

    Consecutive segments overlap by ``W = round(crossfade_s * sr / spf)`` whole latent frames, the
    first ramping down and the second up, linearly; the ramps sum to 1 at every frame, so the
    result decodes to the audio crossfade by homogeneity (each ramp is a gain, Eq. 1) and
    additivity (the faded segments are summed, Eq. 2). The output track's ``samples`` is exact:
    each input but the last counts in whole frames, minus the overlaps (see
    :func:`lincae_core.ops.timeline.plan_concat`). Always the linear form (the gains sum to 1:
    the affine form is the same).

    Args:
        src: Input store.
        out: Output store (default beside ``src``: ``S.concat.zarr``).
        entries: ``[(out_key, [in_key, ...]), ...]`` or a list file (format:
            :mod:`lincae_core.ops.timeline`).
        crossfade_s: Crossfade length in seconds (0: butt joins on the frame grid).
        **kwargs: ``jobs``, ``scheduler``, ``overwrite``, ``progress``, ``dtype``,
            ``max_block_frames``, ``require_complete`` as in :func:`~lincae_core.ops.stores.gain_store`.

    Raises:
        StoreMismatchError: A listed key is not a done track of ``src``.
        ConfigError: A bad list, a negative crossfade, or a track shorter than its ramps.
    """
    s = _open(src)
    if isinstance(entries, (str, os.PathLike)):
        with open(entries, encoding="utf-8") as f:
            entries = parse_concat_list(f.read(), str(entries))
    geo = s.geometry
    w = crossfade_frames(crossfade_s, geo.sample_rate, geo.samples_per_frame)
    plan = plan_concat(s.table(), str(s.path), entries, geo.samples_per_frame, w)
    args = {"list": concat_record(entries), "crossfade_s": float(crossfade_s), "crossfade_frames": w}
    return ops_engine.run_plan(plan, [s], out, op="concat", args=args, origin="linear", **kwargs)


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
    stores = [_open(mix), *(_open(s) for s in stems.values())]
    for s in stores[1:]:
        stores[0].compatible_with(s, force=force)
    return stores


def extract_stems(
    mix: StoreLike,
    stems: Mapping[str, StoreLike],
    out_dir: str | os.PathLike | None,
    *,
    consistent: bool = False,
    length: str = "first",
    missing: str = "error",
    force: bool = False,
    overwrite: bool = False,
    origin: str | None = None,
    dtype: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Estimate every stem of a mixture by latent subtraction: one store per stem in ``out_dir``.

    Each stem's store ``OUT_DIR/NAME.zarr`` holds, per key of ``mix``, the plain leave-one-out
    estimate ``z_mix − Σ_{j≠i} z_j`` (arXiv:2510.23530 Sec. 4.5, given the other stems' latents)
    or, with ``consistent``, ``z_i + (z_mix − Σ_j z_j) / n``: the plain estimates with their
    residual distributed equally, so that the estimates sum to the mixture's latent (to float32
    rounding; ``dtype`` defaults to float32 then). With ``origin="affine"`` each estimate gets
    ``(1 − Σ g)·Enc(0)`` like every operation, and consistency holds for the centred latents:
    ``Σ_i (ẑ_i − Enc(0)) = z_mix − Enc(0)`` (an affine encoder's additivity). Relies on additivity
    (Eq. 2); the per-stem formula and the stem names are in each store's lineage.

    Args:
        mix: Store of mixtures.
        stems: ``{name: store}`` of ``n >= 2`` stems, paired with ``mix`` by key.
        out_dir: New directory for the stem stores (default beside ``mix``: ``MIX.stems`` or,
            consistent, ``MIX.consistent``; a taken name gets a suffix, ``MIX.stems-2``).
        consistent: Mixture-consistent estimates instead of the plain ones.
        length, missing, force, overwrite, origin, dtype: As in
            :func:`~lincae_core.ops.stores.mix_stores`; ``overwrite`` replaces ``out_dir``.
        **kwargs: ``jobs``, ``scheduler``, ``progress``, ``max_block_frames``, ``require_complete``.

    Returns:
        ``{"op": "extract", "out": out_dir, "consistent", "origin", "stems": {name: summary}}``.
    """
    stores = _stem_stores(mix, stems, force)
    names = list(stems)
    origin = origin or default_origin(stores[0])
    dtype = dtype or ("float32" if consistent else None)
    final = _stems_dir(stores[0], out_dir, consistent, overwrite)
    for s in stores:
        if Path(s.path).resolve().is_relative_to(final.resolve()):
            raise LincaeError(f"{final} holds the input {s.path}; write the stems elsewhere")
    summaries: dict[str, Any] = {}
    with building_dir(final, replace=overwrite) as building:
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
            summaries[name] = ops_engine.run_plan(
                plan,
                stores,
                tmp / f"{name}.zarr",
                op="extract",
                args=args,
                dtype=dtype,
                origin=origin,
                **kwargs,
            )
            summaries[name]["out"] = str(final / f"{name}.zarr")
    first = summaries[names[0]]
    return {
        "op": "extract",
        "out": str(final),
        "consistent": consistent,
        "origin": origin,
        "tracks": first["tracks"],
        "frames": sum(v["frames"] for v in summaries.values()),
        **{k: first[k] for k in ("skipped", "left_out") if k in first},
        "stems": summaries,
    }


def _stems_dir(
    mix: LatentStore, out_dir: str | os.PathLike | None, consistent: bool, overwrite: bool
) -> Path:
    if out_dir is None:
        base = Path(mix.path)
        stem = base.name.removesuffix(".zarr") + (".consistent" if consistent else ".stems")
        return free_name(base.parent, stem)
    return check_free(out_dir, overwrite)
