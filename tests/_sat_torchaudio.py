"""A stand-in for ``torchaudio``, for reading exports with stable-audio-tools' own data code.

stable-audio-tools imports torchaudio at module level (``torchaudio.load`` and
``torchaudio.transforms.Resample`` serve its *audio* paths), and no torchaudio build matches the
pinned torch. Its pre-encoded paths (``PreEncodedDataset``, ``WebDatasetDataLoader`` with
``pre_encoded=True``) never call torchaudio, so these names only need to exist: each raises if
called. :func:`sat_dataset` imports ``stable_audio_tools.data.dataset`` with this stand-in
and without the package's ``__init__`` (which imports the models and their many dependencies).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _unused(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"torchaudio stand-in: {name} is not available in the tests")

    return call


def stand_in() -> types.ModuleType:
    """``torchaudio`` with ``load``, ``save`` and ``transforms.Resample`` that raise if called."""
    ta = types.ModuleType("torchaudio")
    ta.__dict__.update(load=_unused("torchaudio.load"), save=_unused("torchaudio.save"))
    tr = types.ModuleType("torchaudio.transforms")
    tr.__dict__.update(Resample=_unused("torchaudio.transforms.Resample"))
    ta.transforms = tr  # type: ignore[attr-defined]
    return ta


@contextlib.contextmanager
def sat_dataset() -> Iterator[types.ModuleType]:
    """``stable_audio_tools.data.dataset`` from the installed package (skip if not installed),
    imported with the stand-in; on exit ``sys.modules`` is as before."""
    spec = importlib.util.find_spec("stable_audio_tools")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("stable-audio-tools is not installed (scripts/setup_test.sh installs it)")
    root = Path(next(iter(spec.submodule_search_locations)))
    ours = ("torchaudio", "torchaudio.transforms", "stable_audio_tools")
    saved = {k: v for k, v in sys.modules.items() if k in ours or k.startswith("stable_audio_tools.")}
    ta = stand_in()
    pkg = types.ModuleType("stable_audio_tools")
    pkg.__path__ = [str(root)]
    sys.modules.update({"torchaudio": ta, "torchaudio.transforms": ta.transforms, "stable_audio_tools": pkg})
    try:
        yield importlib.import_module("stable_audio_tools.data.dataset")
    finally:
        for k in [k for k in sys.modules if k in ours or k.startswith("stable_audio_tools.")]:
            del sys.modules[k]
        sys.modules.update(saved)
