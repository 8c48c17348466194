"""The CLI starts at once: commands are imported when run, the store commands that need no
model import no torch, and ``ls``/``info`` of a local store import no zarr either (the timings
are measured by scripts/bench_startup.py, not here; tests/test_local_view.py compares their
outputs with the zarr path's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lincae_cli.main import COMMANDS, cli
from lincae_core.store.synthetic import synthetic_store

_PROBE = """
import json, sys
from lincae_cli.main import cli
try:
    cli(sys.argv[1:], prog_name="lincae", standalone_mode=False)
except SystemExit:
    pass
print(json.dumps({m: m in sys.modules for m in ("torch", "zarr", "numcodecs", "scipy")}), file=sys.stderr)
"""


def _modules(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, bool]:
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )
    return json.loads(r.stderr.strip().splitlines()[-1])


def test_registry_short_help_is_each_commands_own() -> None:
    for name, entry in COMMANDS.items():
        assert entry.short_help == cli.commands[name].get_short_help_str(limit=1000), name


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_import_no_torch_or_zarr(args: list[str], tmp_path: Path) -> None:
    assert _modules(args, tmp_path) == {"torch": False, "zarr": False, "numcodecs": False, "scipy": False}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_imports_no_torch(command: str, tmp_path: Path) -> None:
    """Each command imports its model or its arithmetic when it runs, not for --help."""
    seen = _modules([command, "--help"], tmp_path)
    assert seen["torch"] is False
    assert seen["scipy"] is False


def test_completion_imports_no_command(tmp_path: Path) -> None:
    env = {**os.environ, "_LINCAE_COMPLETE": "bash_complete", "COMP_WORDS": "lincae en", "COMP_CWORD": "1"}
    r = subprocess.run(
        [sys.executable, "-c", "from lincae_cli.main import cli; cli(prog_name='lincae')"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "plain,encode" in r.stdout.replace("\n", ",")
    assert _modules([], tmp_path, env) == {"torch": False, "zarr": False, "numcodecs": False, "scipy": False}


@pytest.mark.parametrize("args", [["ls", "a.zarr"], ["info", "a.zarr"], ["ls", "a.zarr", "--json"]])
def test_store_listing_commands_import_no_torch_or_zarr(args: list[str], tmp_path: Path) -> None:
    """A local store is read without zarr, numcodecs or torch (lincae_core.store.local_view)."""
    synthetic_store(tmp_path / "a.zarr", [("t1", 10), ("t2", 20)])
    assert _modules(args, tmp_path) == {"torch": False, "zarr": False, "numcodecs": False, "scipy": False}
    forced = _modules(args, tmp_path, {**os.environ, "LINCAE_ZARR_IO": "1"})  # the zarr path
    assert forced["zarr"] is True
    assert forced["torch"] is False
