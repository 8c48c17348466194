"""Per-track loudness and per-dimension latent statistics of a store, both optional (a part of
:class:`~lincae_core.store.latent_store.LatentStore`; see ``docs/store-format.md``).

- ``tracks/loudness_lufs`` (float32, one value a track, NaN when unmeasured): integrated loudness
  (ITU-R BS.1770) of the audio as encoded, written by ``encode``. Chunked like ``tracks/status``,
  so shard processes never write the same chunk. Stores without the array stay readable.
- attribute ``stats``: per-dimension mean and std of the latents (``lincae stats``), versioned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lincae_core.errors import StoreFormatError
from lincae_core.store.base import StoreBase
from lincae_core.store.layout import LOUDNESS

__all__ = ["LOUDNESS", "STATS_VERSION", "LoudnessAndStats", "create_loudness", "validate_stats"]

STATS_VERSION = 1


def validate_stats(stats: Any, channels: int, dim: int, path: str) -> dict[str, Any]:
    """Check a ``stats`` attribute: version, counts and ``mean``/``std`` of shape ``[C][D]``."""
    if not isinstance(stats, dict) or stats.get("version") != STATS_VERSION:
        raise StoreFormatError(
            f"{path}: stats: expected a dict with version {STATS_VERSION}, "
            f"got {stats.get('version') if isinstance(stats, dict) else stats!r}"
        )
    for name in ("mean", "std"):
        arr = np.asarray(stats.get(name), dtype=np.float64)
        if arr.shape != (channels, dim) or not np.isfinite(arr).all():
            raise StoreFormatError(
                f"{path}: stats.{name}: expected finite [{channels}][{dim}] values, got shape {arr.shape}"
            )
    return stats


def create_loudness(group: Any, n: int, chunk: int) -> None:
    """Add ``tracks/loudness_lufs`` for ``n`` rows, NaN (unmeasured), chunked like the status."""
    arr = group.create_array(
        LOUDNESS,
        shape=(n,),
        chunks=(max(1, min(chunk, n)),),
        dtype="float32",
        overwrite=True,
        compressors=None,
        fill_value=float("nan"),
    )
    if n:
        arr[:] = np.full(n, np.nan, np.float32)


class LoudnessAndStats(StoreBase):
    """The optional loudness array and ``stats`` attribute of a store."""

    def loudness(self) -> np.ndarray | None:
        """Per-track integrated loudness in LUFS (float32, NaN: unmeasured), or None if absent."""
        return self._optional_column(LOUDNESS, "float32")

    def write_loudness(self, index: Sequence[int] | np.ndarray, lufs: Sequence[float] | np.ndarray) -> None:
        """Record the loudness of rows ``index`` (call before :meth:`mark_done`, from the shard's writer).

        Raises:
            StoreReplacedError: Another writer replaced the store (:meth:`check_writer`).
        """
        self._require_writable()
        idx = np.asarray(index, dtype=np.int64)
        if idx.size == 0:
            self.check_writer()
            return
        with self._writing():
            if LOUDNESS in self._group:  # a store planned before the array existed: nothing to annotate
                self._group[LOUDNESS][idx] = np.asarray(lufs, dtype=np.float32)

    @property
    def stats(self) -> dict[str, Any] | None:
        """The ``stats`` attribute (``lincae stats``), validated, or None."""
        s = self.attrs.get("stats")
        if s is None:
            return None
        geo = self.geometry
        return validate_stats(s, self.channels, geo.latent_dim, str(self.path))

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Store the ``stats`` attribute (validated first)."""
        self._require_writable()
        geo = self.geometry
        validate_stats(stats, self.channels, geo.latent_dim, str(self.path))
        self._set_attr("stats", stats)
