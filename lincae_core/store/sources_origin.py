"""What a store records besides its latents and track table: the sources of a mix, ``Enc(0)``
and the fingerprint of each encoded track's input.

Both are optional members of the Zarr group (stores without them stay readable); see
docs/store-format.md. A part of :class:`lincae_core.store.LatentStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import lincae_core.store.layout as sl
from lincae_core.errors import ShapeMismatchError, StoreFormatError
from lincae_core.store.array import member
from lincae_core.store.base import StoreBase
from lincae_core.store.layout import TABLE_CHUNK

__all__ = ["INPUT_FINGERPRINT", "SourcesAndOrigin"]

INPUT_FINGERPRINT = "tracks/input_fingerprint"


class SourcesAndOrigin(StoreBase):
    """Mix sources, the encoder's origin and the inputs' fingerprints of a store."""

    def write_input_fingerprints(self, values: Sequence[int] | np.ndarray) -> None:
        """Record one int64 per row: the fingerprint of the input it was encoded from
        (:func:`lincae_core.discovery.track_fingerprints`), written when ``encode`` plans."""
        self._require_writable()
        fp = np.asarray(values, dtype=np.int64)
        if fp.shape != (self.n_tracks,):
            raise ShapeMismatchError(
                f"{self.path}: {INPUT_FINGERPRINT}: expected {self.n_tracks} values, got {fp.shape}"
            )
        arr = self._group.create_array(
            INPUT_FINGERPRINT,
            shape=fp.shape,
            chunks=(max(1, min(TABLE_CHUNK, fp.size)),),
            dtype="int64",
            overwrite=True,
            compressors=None,
            fill_value=0,
        )
        if fp.size:
            arr[:] = fp

    def input_fingerprints(self) -> np.ndarray | None:
        """The per-row input fingerprints (int64), or None for a store planned without them."""
        return self._optional_column(INPUT_FINGERPRINT, "int64")

    def write_sources(self, keys: np.ndarray, gains: np.ndarray, inputs: Sequence[str]) -> None:
        """Record what each output track was made of: ``keys[N, K]`` of ``inputs[K]`` with ``gains``.

        Written by ``mix`` (keyed, positional or random pairing), read back by :meth:`sources`.
        """
        n, k = self.n_tracks, len(inputs)
        if keys.shape != (n, k) or gains.shape != (n, k):
            raise ShapeMismatchError(
                f"{self.path}: sources: expected ({n}, {k}) keys and gains, "
                f"got {keys.shape} and {gains.shape}"
            )
        chunk = (max(1, min(TABLE_CHUNK, n)), k)
        arr = self._group.create_array(
            "sources/key", shape=(n, k), chunks=chunk, dtype=str, overwrite=True, compressors=None
        )
        if n:
            arr[:] = keys.astype(np.dtypes.StringDType())
        garr = self._group.create_array(
            "sources/gain",
            shape=(n, k),
            chunks=chunk,
            dtype="float64",
            overwrite=True,
            compressors=None,
            fill_value=0.0,
        )
        if n:
            garr[:] = gains
        self._set_attr("sources", {"inputs": list(inputs)})

    def write_origin(self, z: np.ndarray) -> None:
        """Store ``Enc(0)``: the latents ``[W, C, D]`` of one encode window of digital silence.

        An affine encoder maps silence to this origin rather than to zero; the affine latent
        operations (:mod:`lincae_core.ops`, ``--origin affine``) use it (docs/method.md §4.2).
        """
        c, d = self.channels, self._geometry.latent_dim
        if z.ndim != 3 or z.shape[1:] != (c, d) or not 1 <= z.shape[0] <= sl.MAX_CHUNK_FRAMES:
            raise ShapeMismatchError(f"{self.path}: origin: expected [W, {c}, {d}], got {z.shape}")
        arr = self._group.create_array(
            "origin",
            shape=z.shape,
            chunks=z.shape,
            dtype="float32",
            overwrite=True,
            compressors=None,
            fill_value=0.0,
        )
        arr[:] = z.astype(np.float32)

    def origin(self) -> np.ndarray | None:
        """``Enc(0)`` averaged over its window's frames, ``[C, D]`` float32 (None: not recorded)."""
        try:
            node = self._group["origin"]
        except KeyError:
            return None
        z = np.asarray(node[:], dtype=np.float32)
        if z.ndim != 3 or z.shape[1:] != (self.channels, self._geometry.latent_dim):
            raise StoreFormatError(f"{self.path}: origin: expected [W, C, D], got {z.shape}")
        return z.mean(axis=0)

    def origin_frames(self) -> np.ndarray | None:
        """The stored ``Enc(0)`` window ``[W, C, D]`` (None: not recorded)."""
        try:
            return np.asarray(self._group["origin"][:], dtype=np.float32)
        except KeyError:
            return None

    def sources(self) -> dict[str, Any] | None:
        """``{"inputs": [...], "key": [N, K], "gain": [N, K]}`` of a mix store, else None."""
        meta = self.attrs.get("sources")
        if not isinstance(meta, dict) or not isinstance(meta.get("inputs"), list):
            return None
        keys = member(self._group, "sources/key", self.path)
        gains = member(self._group, "sources/gain", self.path)
        shape = (self.n_tracks, len(meta["inputs"]))
        if tuple(keys.shape) != shape or tuple(gains.shape) != shape:
            raise StoreFormatError(f"{self.path}: sources: expected shape {shape}")
        return {"inputs": list(meta["inputs"]), "key": keys[:], "gain": gains[:]}
