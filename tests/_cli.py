"""The installed console script, as the issue-22 tests run it: one call, its exit status checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

LINCAE = shutil.which("lincae") or f"{sys.executable} -m lincae_cli"


def lincae(*args: str, code: int = 0, ckpt: str | None = None) -> subprocess.CompletedProcess:
    """Run ``lincae ARGS`` on one OpenMP thread (``ckpt``: as ``LINCAE_CHECKPOINT``) and check that
    it exits with ``code``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"LINCAE_CHECKPOINT": ckpt} if ckpt else {})}
    proc = subprocess.run([*LINCAE.split(), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, f"{args} -> {proc.returncode}: {proc.stderr}"
    return proc
