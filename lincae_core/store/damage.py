"""Damage of a store's latent chunks, detected and repaired (``lincae verify``).

A chunk the layout gave to done tracks must exist and have its full size. A missing chunk file
(a partial copy, an rsync cut short) would otherwise read as the fill value, zeros, and a
truncated one as a reshape error naming nothing: :class:`~lincae_core.store.array.LatentArray`
asks :func:`damaged` when a chunk file is missing or of the wrong size, and reads zeros only for
a chunk no done track covers (never written yet, or shard padding). In a store made with
checksums (:mod:`~lincae_core.store.chunk_files`) a chunk whose CRC32C does not match (a bit
flip) is damage the same way. :func:`verify_store` checks every chunk of the done tracks at once
(and reads each to check its checksum when the store has them); with ``repair`` it marks the
tracks of damaged chunks planned again, so that the encode that made the store re-encodes
exactly them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from lincae_core.errors import StoreFormatError
from lincae_core.location import Location, RemotePath
from lincae_core.store.chunk_files import CHECKSUM_PROBLEM, CRC_BYTES

__all__ = ["DamagedChunk", "DamagedStoreError", "VerifyReport", "damaged", "done_rows", "verify_store"]


class DamagedStoreError(StoreFormatError):
    """A chunk of done tracks is missing, truncated or corrupt (its checksum does not match)."""


@dataclass(frozen=True)
class DamagedChunk:
    """A chunk that is not what the layout promises, and the done tracks it holds frames of."""

    chunk: int
    problem: str  # "missing", "truncated (N of M bytes)" or CHECKSUM_PROBLEM
    tracks: tuple[str, ...]


@dataclass
class VerifyReport:
    """What :func:`verify_store` found: the chunks checked, their checksums (``checksums``: the
    algorithm, None for a store without) and the damaged chunks."""

    path: str
    chunks_checked: int = 0
    checksums: str | None = None
    checksums_checked: int = 0
    checksum_mismatches: int = 0
    damaged: list[DamagedChunk] = field(default_factory=list)
    repaired_tracks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (``lincae verify --json``)."""
        return {
            "path": self.path,
            "chunks_checked": self.chunks_checked,
            "checksums": self.checksums,
            "checksums_checked": self.checksums_checked,
            "checksum_mismatches": self.checksum_mismatches,
            "damaged": [
                {"chunk": d.chunk, "problem": d.problem, "tracks": list(d.tracks)} for d in self.damaged
            ],
            "repaired_tracks": self.repaired_tracks,
        }


DoneRows = tuple[np.ndarray, np.ndarray, list[str]]


def done_rows(path: Location) -> DoneRows:
    """Offsets, frames and keys of the store's done tracks (read from its table)."""
    from lincae_core.store.group import zarr_store

    g: Any = zarr.open_group(zarr_store(path, "r"), mode="r")
    done = np.flatnonzero(np.asarray(g["tracks/status"][:]) == 1)
    keys = np.asarray(g["tracks/key"][:])
    offsets = np.asarray(g["tracks/offset"][:])[done]
    return offsets, np.asarray(g["tracks/frames"][:])[done], [str(keys[i]) for i in done]


def _covering(offsets: np.ndarray, frames: np.ndarray, keys: list[str], a: int, b: int) -> tuple[str, ...]:
    hit = (offsets < b) & (offsets + frames > a) & (frames > 0)
    return tuple(keys[i] for i in np.flatnonzero(hit))


def _repair_hint(path: Location) -> str:
    return (
        f"run 'lincae verify {path} --repair' to mark them planned, then the encode that made the "
        "store again to re-encode them"
    )


def damaged(
    path: Location, rows: DoneRows, chunk: int, chunk_frames: int, problem: str, cause: str | None = None
) -> None:
    """Raise :class:`DamagedStoreError` if chunk ``chunk`` (missing, truncated or corrupt:
    ``problem``, likely from ``cause``, default a partial copy) holds frames of done tracks
    (``rows``: :func:`done_rows`); return if it holds none (it reads as zeros then)."""
    offsets, frames, keys = rows
    tracks = _covering(offsets, frames, keys, chunk * chunk_frames, (chunk + 1) * chunk_frames)
    if tracks:
        shown = ", ".join(repr(k) for k in tracks[:3]) + (
            f" and {len(tracks) - 3} more" if len(tracks) > 3 else ""
        )
        raise DamagedStoreError(
            f"{path}: latent chunk {chunk} is {problem} ({cause or 'a partial copy?'}); it holds frames of "
            f"{len(tracks)} done tracks ({shown}): {_repair_hint(path)}"
        )


def verify_store(store: Any, repair: bool = False) -> VerifyReport:
    """Check that every chunk holding frames of done tracks exists with its full size and, in a
    store with checksums, that its CRC32C matches (each such chunk read whole); with ``repair``,
    mark the tracks of damaged chunks planned (the store opened ``r+``)."""
    path = store.path
    report = VerifyReport(str(path), checksums=store.latents.checksums)
    offsets, frames, keys = done_rows(path)
    cf = store.chunk_frames
    lat = store.latents
    c, d = lat.shape[1:]
    want = cf * c * d * lat.dtype.itemsize + (CRC_BYTES if report.checksums else 0)
    needed: set[int] = set()
    for o, n in zip(offsets.tolist(), frames.tolist(), strict=True):
        if n > 0:
            needed.update(range(o // cf, (o + n - 1) // cf + 1))
    sizes = _chunk_sizes(path, store.chunk_key_separator, store.chunks_per_object)
    for k in sorted(needed):
        report.chunks_checked += 1
        size = sizes.get(k)
        problem = "missing" if size is None else None
        if size is not None and store.chunks_per_object == 1 and size != want:
            problem = f"truncated ({size} of {want} bytes)"
        if problem is None and report.checksums:
            report.checksums_checked += 1
            if not lat.checksum_ok(k):
                report.checksum_mismatches += 1
                problem = CHECKSUM_PROBLEM
        if problem:
            tracks = _covering(offsets, frames, keys, k * cf, (k + 1) * cf)
            report.damaged.append(DamagedChunk(k, problem, tracks))
    if repair and report.damaged:
        bad = sorted({t for dmg in report.damaged for t in dmg.tracks})
        store._set_status([store.index_of(t) for t in bad], 0)
        report.repaired_tracks = bad
    return report


def _chunk_sizes(path: Location, sep: str, per_object: int) -> dict[int, int]:
    """The size of every latent chunk object, by chunk index (one listing of ``latents/``)."""
    prefix = "c." if sep == "." else "c/"
    sizes: dict[int, int] = {}
    if isinstance(path, RemotePath):
        listing = path.fs.find((path / "latents").path, detail=True)
        items = [(name.split("/latents/", 1)[1], info["size"]) for name, info in listing.items()]
    else:
        root = os.path.join(os.fspath(path), "latents")
        items = []
        for dirpath, _, files in os.walk(root):
            for f in files:
                full = os.path.join(dirpath, f)
                items.append((os.path.relpath(full, root).replace(os.sep, "/"), os.path.getsize(full)))
    for rel, size in items:
        if rel.startswith(prefix) and not rel.endswith(".partial") and ".partial" not in rel:
            parts = rel[2:].split(sep)
            if parts and parts[0].isdigit():
                sizes[int(parts[0])] = int(size)
    return sizes
