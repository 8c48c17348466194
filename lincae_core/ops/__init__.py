"""Latent-domain operations: pure algebra on arrays, and the same operations on whole stores.

The operations, one module each: :mod:`~lincae_core.ops.levels` (``gain``: a gain, loudness
targets, fades and envelopes), :mod:`~lincae_core.ops.mixing` (``mix``, ``extract``),
:mod:`~lincae_core.ops.select`, :mod:`~lincae_core.ops.concat`, :mod:`~lincae_core.ops.channels`
(``pan``, ``midside``), :mod:`~lincae_core.ops.stems` (``extract --stem``),
:mod:`~lincae_core.ops.stats` and the package :mod:`~lincae_core.ops.export` (WebDataset shards).
What they share: :mod:`~lincae_core.ops.options` (``OpOptions`` in, ``OpResult`` out),
:mod:`~lincae_core.ops.algebra` (pure math on ``[F, C, D]`` arrays),
:mod:`~lincae_core.ops.envelopes` (pure gain curves on the frame grid),
:mod:`~lincae_core.ops.plan` (pure planning of an output table from input tables),
:mod:`~lincae_core.ops.forms` (linear or affine form, linearity warnings),
:mod:`~lincae_core.ops.outputs` (output paths, left-out tracks),
:mod:`~lincae_core.ops.engine` (a plan into a new store), :mod:`~lincae_core.ops.kernel` and
:mod:`~lincae_core.ops.blocks` (one work unit, block by block) and
:mod:`~lincae_core.ops.parallel` (running units here, on joblib workers or on Dask). Nothing here
imports a model.
"""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported lazily, so that a worker running one module's units (e.g. the export's, which need
# no torch) imports only what that module needs.
_EXPORTS = {
    "db_to_amplitude": "lincae_core.ops.algebra",
    "extract": "lincae_core.ops.algebra",
    "gain": "lincae_core.ops.algebra",
    "match_length": "lincae_core.ops.algebra",
    "mix": "lincae_core.ops.algebra",
    "OpOptions": "lincae_core.ops.options",
    "OpResult": "lincae_core.ops.options",
    "StemsResult": "lincae_core.ops.options",
    "RANDOM_GAIN_RANGE": "lincae_core.ops.plan",
    "default_origin": "lincae_core.ops.forms",
    "operation_warnings": "lincae_core.ops.forms",
    "gain_store": "lincae_core.ops.levels",
    "extract_store": "lincae_core.ops.mixing",
    "mix_stores": "lincae_core.ops.mixing",
    "select_store": "lincae_core.ops.select",
    "concat_store": "lincae_core.ops.concat",
    "parse_concat_list": "lincae_core.ops.concat",
    "midside_store": "lincae_core.ops.channels",
    "pan_store": "lincae_core.ops.channels",
    "extract_stems": "lincae_core.ops.stems",
    "StatsResult": "lincae_core.ops.stats",
    "stats_store": "lincae_core.ops.stats",
    "ExportResult": "lincae_core.ops.export",
    "export_shards": "lincae_core.ops.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lincae_core.ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
