"""A re-run of ``encode`` on a library that grew or changed: only new and changed inputs are encoded.

A store planned by ``encode`` keeps one fingerprint per track (``tracks/input_fingerprint``: the
input's key, relative path, size and modification time, :func:`lincae_core.discovery.track_fingerprints`).
When the library's fingerprint no longer matches the store's, :func:`library_changes` compares
them track by track, and :func:`grown_plan` lays out the updated store:

- rows of unchanged inputs keep their place and, when done, their latents (copied byte for byte);
- rows of changed inputs (another size or modification time) are planned again and re-encoded;
- finished rows whose input is gone stay (a library pruned after encoding keeps its dataset);
  unfinished ones are dropped;
- new inputs (and inputs that could not be planned before) are appended at the end.

The updated store is planned beside the old one and renamed onto it in one step, as every plan
(:mod:`lincae_core.encoding.plan`): a kill at any instant leaves either the old store or the
updated one, never a mix. Stores in object storage are not grown in place (no atomic rename of a
prefix): they are refused with what to do instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lincae_core.config import ModelConfig
from lincae_core.discovery import Source, track_fingerprints
from lincae_core.encoding.plan import EncodePlan, build_plan
from lincae_core.errors import StoreMismatchError
from lincae_core.location import Location, RemotePath
from lincae_core.store import LatentStore
from lincae_core.store.layout import STATUS_DONE, PlanRow

__all__ = ["GrownPlan", "LibraryChanges", "carry_over", "grown_plan", "library_changes", "planned_update"]

log = logging.getLogger(__name__)


@dataclass
class LibraryChanges:
    """How a library differs from the store encoded from it (row indices of the store)."""

    added: list[Source] = field(default_factory=list)  # inputs without a row
    changed: list[int] = field(default_factory=list)  # rows whose input was rewritten
    gone: list[int] = field(default_factory=list)  # rows whose input is no longer listed
    unchanged: list[int] = field(default_factory=list)
    fingerprints: np.ndarray | None = None  # the store's, one per row

    def summary(self, store: LatentStore) -> dict[str, Any]:
        """JSON-ready counts and (up to 20) keys of each kind of change."""
        keys = store.table()["key"]
        done = store.table()["status"] == STATUS_DONE
        kept = [i for i in self.gone if done[i]]
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "gone_kept": len(kept),
            "gone_dropped": len(self.gone) - len(kept),
            "added_keys": [s.key for s in self.added[:20]],
            "changed_keys": [str(keys[i]) for i in self.changed[:20]],
            "gone_keys": [str(keys[i]) for i in kept[:20]],
        }


def library_changes(
    store: LatentStore, sources: Sequence[Source], fingerprints: Sequence[int]
) -> LibraryChanges:
    """Compare the inputs with the rows of ``store`` by key and fingerprint.

    Raises:
        StoreMismatchError: The store predates per-track fingerprints, or none of its finished
            tracks comes from these inputs (another library: ``--overwrite`` replaces the store).
    """
    old = store.input_fingerprints()
    if old is None:
        raise StoreMismatchError(
            f"{store.path} was planned from another input set, by a lincae that kept no per-track "
            "fingerprints, so the new or changed inputs cannot be told apart: use --overwrite to "
            "re-encode everything, or another output path."
        )
    table = store.table()
    row_of = {str(k): i for i, k in enumerate(table["key"])}
    changes = LibraryChanges(fingerprints=old)
    listed = set()
    for s, fp in zip(sources, fingerprints, strict=True):
        i = row_of.get(s.key)
        listed.add(s.key)
        if i is None:
            changes.added.append(s)
        elif int(old[i]) == int(fp):
            changes.unchanged.append(i)
        else:
            changes.changed.append(i)
    changes.gone = [i for k, i in row_of.items() if k not in listed]
    done = table["status"] == STATUS_DONE
    if done.any() and not (changes.unchanged or changes.changed):
        raise StoreMismatchError(
            f"{store.path}: none of its {store.n_tracks} tracks comes from these inputs: is this the "
            "library it was encoded from? Use --overwrite to replace the store, or another output path."
        )
    return changes


@dataclass
class GrownPlan:
    """The plan of the updated store: rows, their inputs' fingerprints, rows to carry over."""

    plan: EncodePlan
    fingerprints: list[int]
    carry: list[tuple[int, int]]  # (row in the old store, row in the new one): done, copied


def grown_plan(
    store: LatentStore,
    sources: Sequence[Source],
    fingerprints: Sequence[int],
    changes: LibraryChanges,
    cfg: ModelConfig,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> GrownPlan:
    """Lay out the updated store (see the module docstring); probes only changed and new inputs."""
    if isinstance(store.path, RemotePath):
        raise StoreMismatchError(
            f"{store.path}: the library has {len(changes.added)} new and {len(changes.changed)} "
            "changed inputs, and a store in object storage is not grown in place: encode them into "
            "another store (--files-from a list of them), or use --overwrite to re-encode everything."
        )
    table = store.table()
    fp_of = {s.key: int(fp) for s, fp in zip(sources, fingerprints, strict=True)}
    src_of = {s.key: s for s in sources}
    old_fp = changes.fingerprints
    assert old_fp is not None  # library_changes refused stores without them
    changed, gone = set(changes.changed), set(changes.gone)
    probe = [src_of[str(table["key"][i])] for i in changes.changed] + list(changes.added)
    probed = build_plan(probe, cfg, workers, progress)
    new_rows = {r.key: (r, p) for r, p in zip(probed.rows, probed.paths, strict=True)}
    out = EncodePlan(sample_rate=cfg.sample_rate, failures=list(probed.failures))
    fps: list[int] = []
    carry: list[tuple[int, int]] = []
    done = table["status"] == STATUS_DONE

    def add(row: PlanRow, path: Any, fp: int) -> int:
        out.rows.append(row)
        out.paths.append(path)
        fps.append(fp)
        return len(out.rows) - 1

    for i, key in enumerate(map(str, table["key"])):
        if i in changed:
            if key in new_rows:
                add(*new_rows[key], fp_of[key])
        elif i in gone and not done[i]:
            continue
        else:
            row = PlanRow(
                key,
                int(table["frames"][i]),
                int(table["samples"][i]),
                int(table["source_rate"][i]),
                int(table["channels"][i]),
            )
            j = add(row, src_of[key].path if key in src_of else None, int(old_fp[i]))
            if done[i]:
                carry.append((i, j))
    for s in changes.added:
        if s.key in new_rows:
            add(*new_rows[s.key], fp_of[s.key])
    return GrownPlan(out, fps, carry)


def carry_over(old: LatentStore, new: LatentStore, grown: GrownPlan) -> None:
    """Copy the finished tracks of ``old`` into the planned ``new`` store, with their loudness,
    and mark them done."""
    if not grown.carry:
        return
    frames = new.copy_tracks(old, grown.carry)
    lufs = old.loudness()
    dst = np.array([j for _, j in grown.carry], np.int64)
    if lufs is not None:
        new.write_loudness(dst, lufs[[i for i, _ in grown.carry]])
    new.mark_done(dst)
    log.debug("%s: carried %d finished tracks (%d frames) over", new.path, len(dst), frames)


def planned_update(out: Location, sources: Sequence[Source]) -> dict[str, Any] | None:
    """What a re-run of ``encode`` into the store at ``out`` would find changed in the library
    (``--dry-run``; :meth:`LibraryChanges.summary`), or None: no store there, or nothing changed."""
    if not (out / "zarr.json").is_file():
        return None
    store = LatentStore.open(out)
    changes = library_changes(store, sources, track_fingerprints(sources))
    if not (changes.added or changes.changed or changes.gone):
        return None
    return changes.summary(store)
