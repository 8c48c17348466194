"""Lineage records: every store says which operation made it from which inputs (store format doc)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lincae_core._version import __version__
from lincae_core.location import resolved

__all__ = ["lineage_entry", "utc_now"]


def utc_now() -> str:
    """Return the current UTC time in ISO 8601 form."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def lineage_entry(op: str, args: Mapping[str, Any], inputs: Sequence[Any]) -> dict[str, Any]:
    """Build one lineage record: the operation, its arguments and its inputs' paths and ids.

    Args:
        op: Operation name (``"gain"``, ``"mix"``, ...).
        args: JSON-ready arguments that reproduce the operation.
        inputs: Input stores (anything with ``path`` and ``store_id``).
    """
    return {
        "op": op,
        "args": dict(args),
        "inputs": [{"path": str(resolved(s.path)), "store_id": s.store_id} for s in inputs],
        "time": utc_now(),
        "lincae_version": __version__,
    }
