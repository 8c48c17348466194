"""Latent-domain operations: pure algebra on arrays, and the same operations on whole stores.

Rooms: :mod:`~lincae_core.ops.algebra` (pure math on ``[F, C, D]`` arrays),
:mod:`~lincae_core.ops.plan` (pure planning of an output table from input tables),
:mod:`~lincae_core.ops.shape` (pure per-frame gains and channel matrices),
:mod:`~lincae_core.ops.edits` (fades, envelopes, loudness, pan, mid/side),
:mod:`~lincae_core.ops.timeline` (pure planning of ``concat``), :mod:`~lincae_core.ops.compose`
(``concat`` and mixture-consistent stems),
:mod:`~lincae_core.ops.stats` (latent statistics),
:mod:`~lincae_core.ops.engine` (chunked I/O, joblib workers, publishing the output),
:mod:`~lincae_core.ops.stores` (the store-level operations) and :mod:`~lincae_core.ops.export`
(WebDataset shards). Nothing here imports a model.
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
    "concat_store": "lincae_core.ops.compose",
    "extract_stems": "lincae_core.ops.compose",
    "midside_store": "lincae_core.ops.edits",
    "pan_store": "lincae_core.ops.edits",
    "extract_store": "lincae_core.ops.stores",
    "gain_store": "lincae_core.ops.stores",
    "mix_stores": "lincae_core.ops.stores",
    "operation_warnings": "lincae_core.ops.stores",
    "select_store": "lincae_core.ops.stores",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lincae_core.ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
