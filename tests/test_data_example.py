"""The separator example of docs/loading.md runs (a few steps on small synthetic stem stores)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from _latent_stores import make_store

DOC = Path(__file__).resolve().parents[1] / "docs" / "loading.md"


def test_the_separator_example_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOC.read_text()
    block = re.search(r"<!-- example: run by tests/test_data_example.py -->\n```python\n(.*?)```", text, re.S)
    assert block, "the example block is missing"
    code = block.group(1)
    assert "epochs, max_steps = 20, 5000\n" in code
    code = code.replace("epochs, max_steps = 20, 5000\n", "epochs, max_steps = 2, 4\n")
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(("vocals", "drums", "bass", "other")):
        s, _ = make_store(
            Path("stems") / f"{name}.zarr", [("a", 150), ("b", 90), ("c", 200)], seed=i, channels=1
        )
        s.write_origin(np.zeros((2, 1, 8), np.float32))
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - the documented example, run as written
    assert scope["step"] == 4
    assert all(math.isfinite(v) for v in scope["losses"])
