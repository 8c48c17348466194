"""kill -9 during an encode into a bucket, then the same command again: bit-identical to an
uninterrupted encode (issue 23 item 2). Two trials of ``scripts/kill_trials_object_store.py`` (the
script runs ten and more; its result is in the issue's note) on the session's moto server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from _s3 import s3_env, s3_server  # noqa: F401

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kill_trials_object_store.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kill_trials_object_store", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_kill_then_rerun_is_bit_identical(s3_server, s3_env, tmp_path: Path) -> None:  # noqa: F811
    """Two kills (a local library, then the library in the bucket) inside the part of the run that
    writes to the bucket; each re-run exits 0 with the reference's keys, rows and latent bytes."""
    kt = load_script()
    lines: list[str] = []
    report = kt.run_trials(s3_server, s3_env, tmp_path, trials=2, seed=4, log=lines.append, window="store")
    text = kt.format_report(report)
    assert report.reference_state == "complete 12/12", text
    assert [t.source for t in report.trials] == ["local", "s3"]
    for t in report.trials:
        assert t.rerun_rc == 0, f"{text}\n{t.rerun_log}"
        assert t.diffs == [], text
    assert text.endswith("kill trials: 2/2 bit-identical"), text
