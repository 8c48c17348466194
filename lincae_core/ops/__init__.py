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

from lincae_core.ops.algebra import db_to_amplitude, extract, gain, match_length, mix
from lincae_core.ops.compose import concat_store, extract_stems
from lincae_core.ops.edits import midside_store, pan_store
from lincae_core.ops.stores import extract_store, gain_store, mix_stores, operation_warnings, select_store

__all__ = [
    "concat_store", "db_to_amplitude", "extract", "extract_stems", "extract_store", "gain",
    "gain_store", "match_length", "midside_store", "mix", "mix_stores", "operation_warnings",
    "pan_store", "select_store",
]
