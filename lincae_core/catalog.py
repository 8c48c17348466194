"""The models a user can pass to ``-c``: the embedded default, the shipped baseline, lincae's cached
checkpoints and the released names (``lincae models``), each as a JSON-ready record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lincae_core.checkpoint import DEFAULT_MODEL_DIR, load_checkpoint_info
from lincae_core.config import ModelConfig, get_preset
from lincae_core.describe import measured_summary
from lincae_core.errors import LincaeError
from lincae_core.hub import RELEASES, cache_root, cached_checkpoint, hub_snapshot, parse_model_name

__all__ = ["BASELINE_DIR", "list_models"]

# The Music2Latent-objective baseline of the default model, in a source checkout (not installed).
BASELINE_DIR = Path(__file__).resolve().parents[1] / "models" / "baseline-tiny"


def _parameters(cfg: ModelConfig) -> int:
    """Parameter count of a config, built on the meta device (no memory, no weights)."""
    import torch

    from lincae_core.nn.model import LinCAE

    with torch.device("meta"):
        return sum(p.numel() for p in LinCAE(cfg).parameters())


def _record(name: str, kind: str, use: str, path: Path | None, state: str) -> dict[str, Any]:
    """The record of a checkpoint directory (``path``) or of a release not converted yet (None)."""
    cfg, card = load_checkpoint_info(path) if path is not None else (get_preset("paper"), {})
    source: dict[str, Any] = card["source"] if isinstance(card.get("source"), dict) else {}
    return {
        "name": name,
        "kind": kind,
        "use": f"-c {use}",
        "path": None if path is None else str(path),
        "sample_rate": cfg.sample_rate,
        "channels": 1,  # every model codes one channel; stereo stores hold two coded channels
        "parameters": card.get("parameters") or _parameters(cfg),
        "model_id": card.get("model_id"),
        "offline": state != "not downloaded",
        "state": state,
        "source": {k: source[k] for k in ("repo", "commit") if k in source} or None,
        "measured": measured_summary(card, card.get("model_id")) if path is not None else None,
    }


def _release_state(name: str) -> tuple[Path | None, str]:
    path = cached_checkpoint(name)
    if path is not None:
        return path, "converted"
    src = parse_model_name(name)
    assert src is not None, f"{name} is a released name"
    _, held = hub_snapshot(src)
    return None, "in the hub cache" if len(held) == len(src.files) else "not downloaded"


def _cached_entries() -> list[dict[str, Any]]:
    entries = []
    for p in sorted((cache_root() / "names").glob("*.json")):
        try:
            entries.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return entries


def list_models() -> list[dict[str, Any]]:
    """Every model ``-c`` can take here, one record each (the embedded default first).

    Records hold ``name``, ``kind`` (embedded, baseline, released, cached), the ``-c`` value to
    use, ``path``, ``sample_rate``, ``channels``, ``parameters``, ``model_id``, ``offline``
    (usable without a network), ``state``, ``source`` (repository and commit) and ``measured`` (a
    summary of the card's measurements, or why there is none).
    """
    rows = [_record("default", "embedded", "default", DEFAULT_MODEL_DIR, "embedded")]
    if (BASELINE_DIR / "config.json").is_file():
        rows.append(_record("baseline-tiny", "baseline", str(BASELINE_DIR), BASELINE_DIR, "shipped"))
    for name in RELEASES:
        path, state = _release_state(name)
        rows.append(_record(name, "released", name, path, state))
    released = {src.canonical for src in map(parse_model_name, RELEASES) if src is not None}
    listed = {str(r["path"]) for r in rows}
    for entry in _cached_entries():
        try:
            path = cached_checkpoint(str(entry.get("name")))
        except LincaeError:
            continue
        if path is not None and entry.get("spec") not in released and str(path) not in listed:
            rows.append(_record(str(entry["name"]), "cached", str(entry["name"]), path, "converted"))
            listed.add(str(path))
    for path in sorted((cache_root() / "checkpoints").glob("*/model.safetensors")):
        if str(path.parent) not in listed:  # converted, but no name points at it any more
            rows.append(_record(path.parent.name, "cached", str(path.parent), path.parent, "converted"))
    return rows
