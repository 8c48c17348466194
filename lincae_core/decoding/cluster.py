"""``decode --scheduler``: the tracks of a decode split among the workers of a Dask cluster.

Each unit is a contiguous run of keys that one worker decodes into its own files with
:func:`~lincae_core.decoding.files.decode_keys` (one pass at a time, on one torch thread). A
track's audio does not depend on the other tracks of its batches (:mod:`.engine`), so the files
are byte-identical to a local decode. The workers must see the store and the output folder at the
same paths and have lincae installed; the model travels with each unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import joblib

from lincae_core.decoding.files import (
    DecodeSettings,
    DecodeSummary,
    _inside,
    decode_keys,
    safe_relpath,
)
from lincae_core.location import Location, absolute, as_location
from lincae_core.nn.model import LinCAE
from lincae_core.ops.parallel import parallel_backend
from lincae_core.store import LatentStore

__all__ = ["DecodeUnit", "decode_on_cluster", "decode_unit"]


@dataclass(frozen=True)
class DecodeUnit:
    """Keys of one store that one worker decodes into ``root``."""

    store: str
    root: str
    keys: tuple[str, ...]
    model: LinCAE
    settings: DecodeSettings


def decode_unit(unit: DecodeUnit) -> DecodeSummary:
    """Decode one unit's tracks (on the worker)."""
    store = LatentStore.open(unit.store)
    root = as_location(unit.root)
    targets = {k: _inside(root, safe_relpath(k, "." + unit.settings.fmt)) for k in unit.keys}
    return decode_keys(store, targets, unit.model, replace(unit.settings, jobs=1))


def decode_on_cluster(
    store: Location,
    root: Location,
    model: LinCAE,
    keys: Sequence[str],
    settings: DecodeSettings,
    scheduler: str,
    progress: Callable[[str, float], None] | None = None,
) -> DecodeSummary:
    """Decode ``keys`` on the cluster at ``scheduler``: about four units a worker, results merged
    in key order."""
    summary = DecodeSummary()
    with parallel_backend(1, scheduler) as workers:
        size = max(1, -(-len(keys) // (4 * workers)))
        units = [
            DecodeUnit(absolute(store), absolute(root), tuple(keys[i : i + size]), model, settings)
            for i in range(0, len(keys), size)
        ]
        parts: dict[int, DecodeSummary] = {}
        par = joblib.Parallel(n_jobs=workers, return_as="generator")
        for n, part in enumerate(par(joblib.delayed(decode_unit)(u) for u in units)):
            parts[n] = part
            if progress is not None:
                for key in units[n].keys:
                    progress(key, part.seconds / len(units[n].keys))
    for n in range(len(units)):
        summary.files += parts[n].files
        summary.clipped.update(parts[n].clipped)
        summary.seconds += parts[n].seconds
    return summary
