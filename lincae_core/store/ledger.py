"""The failure ledger of a store: append-only JSON lines, one file per writer process.

A writer (an encode shard) owns its file, so shards never write the same file; a reader keeps the
latest record of each row that is still failed, then the records of inputs that never got a row.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from lincae_core.location import Location, RemotePath
from lincae_core.store.layout import STATUS_FAILED

__all__ = ["append_ledger", "read_ledger"]


def append_ledger(ledger_dir: Location, writer: str, record: dict[str, Any]) -> None:
    """Append one failure record to ``ledger_dir/<writer>.jsonl`` (one writer per file).

    In object storage an object cannot be appended to: the writer's object is read and written
    back whole with the new line (one writer per object, so no update is lost)."""
    line = json.dumps(record, ensure_ascii=True) + "\n"
    if isinstance(ledger_dir, RemotePath):
        obj = ledger_dir / f"{writer}.jsonl"
        old = obj.read_bytes() if obj.is_file() else b""
        obj.write_bytes(old + line.encode("ascii"))
        return
    ledger_dir.mkdir(exist_ok=True)
    # One short write of one line: readers skip a torn last line after a crash.
    with open(ledger_dir / f"{writer}.jsonl", "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_ledger(ledger_dir: Location, status: np.ndarray) -> list[dict[str, Any]]:
    """Read the current failure records of a store.

    Args:
        ledger_dir: The store's ``ledger/`` directory.
        status: ``(N,)`` current track status; records of rows no longer failed are stale.

    Returns:
        The latest record of each failed row, then of each input that never got a row.
    """
    latest: dict[Any, dict[str, Any]] = {}
    n = status.shape[0]
    files: list[Location] = [*ledger_dir.glob("*.jsonl")]
    for f in sorted(files, key=str):
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # torn last line of a killed writer
            if not isinstance(rec, dict) or not isinstance(rec.get("reason"), str):
                continue
            i = rec.get("index")
            if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n:
                if status[i] == STATUS_FAILED:
                    latest[("row", i)] = rec
            elif i is None:
                latest[("input", str(rec.get("key")))] = rec
    return list(latest.values())
