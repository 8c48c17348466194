"""scripts/plot_runs.py: learning curves of several run folders in one PNG."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_runs.py"


def _module():
    spec = importlib.util.spec_from_file_location("plot_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, slope: float) -> Path:
    folder.mkdir()
    rows = [{"step": s, "loss": 100.0 / (1 + slope * s), "lr": 1e-4} for s in range(10, 210, 10)]
    rows += [
        {
            "step": s,
            "kind": "valid",
            "mss": 3.0 - slope * s,
            "enc_hom": 1.0,
            "enc_add": 0.8,
            "dec_add_mss": 0.2,
        }
        for s in (100, 200)
    ]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_plot_runs_writes_a_png_and_reads_both_row_kinds(tmp_path: Path) -> None:
    pr = _module()
    a, b = _run(tmp_path / "lincae", 0.01), _run(tmp_path / "baseline", 0.002)
    train, valid = pr.read_run(a)
    assert len(train) == 20
    assert [r["step"] for r in valid] == [100, 200]
    out = tmp_path / "plots" / "curves.png"
    assert pr.main([str(a), str(b), "-o", str(out), "--smooth", "5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_plot_runs_names_a_folder_without_metrics(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="metrics.jsonl does not exist"):
        _module().main([str(tmp_path), "-o", str(tmp_path / "x.png")])
