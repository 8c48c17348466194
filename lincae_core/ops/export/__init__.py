"""``export``: fixed-length latent windows of a store as WebDataset tar shards.

Rooms: :mod:`~lincae_core.ops.export.shards` (planning and running an export,
:func:`export_shards`), :mod:`~lincae_core.ops.export.writer` (one work unit's shards),
:mod:`~lincae_core.ops.export.windows` (window starts, counts and sample keys),
:mod:`~lincae_core.ops.export.metadata` (per-track JSON Lines metadata),
:mod:`~lincae_core.ops.export.sat` (stable-audio-tools' layouts: ``details.json``, ``silence.npy``,
``filelist.txt``) and
:mod:`~lincae_core.ops.export.tar` (tar members and ``.npy`` headers). No torch.
"""

from __future__ import annotations

from lincae_core.ops.export.metadata import RESERVED_FIELDS, read_track_metadata
from lincae_core.ops.export.sat import FORMATS
from lincae_core.ops.export.shards import ExportResult, export_shards, normalization
from lincae_core.ops.export.tar import tar_header
from lincae_core.ops.export.windows import sample_key, window_counts, window_starts

__all__ = [
    "FORMATS",
    "RESERVED_FIELDS",
    "ExportResult",
    "export_shards",
    "normalization",
    "read_track_metadata",
    "sample_key",
    "tar_header",
    "window_counts",
    "window_starts",
]
