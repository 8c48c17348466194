"""Where the work units of an operation run: this process, local joblib workers, or a Dask cluster.

``scheduler`` is a ``dask.distributed`` scheduler address (``tcp://host:8786``) or a scheduler file
(``scheduler.json``, as written by ``dask scheduler --scheduler-file`` or dask-jobqueue); it may also
come from the ``LINCAE_SCHEDULER`` environment variable (the CLI's ``--scheduler``). Each unit
writes its own chunk-aligned blocks of the output store, so the result is byte-identical
whichever backend runs the units and in whatever order (tests/test_ops_dask.py). The workers must
see the stores at the same paths (a shared file system) and have lincae installed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import joblib

from lincae_core.errors import ConfigError

__all__ = ["parallel_backend"]


@contextlib.contextmanager
def parallel_backend(jobs: int, scheduler: str | None = None) -> Iterator[int]:
    """Run the block of joblib work on ``jobs`` local workers or on a Dask cluster.

    Args:
        jobs: Local joblib workers (-1: every core); ignored with a scheduler.
        scheduler: A Dask scheduler address or scheduler file (None: local).

    Yields:
        The ``n_jobs`` to pass to ``joblib.Parallel`` (1 means: run in this process).
    """
    if not scheduler:
        yield joblib.effective_n_jobs(jobs)
        return
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--scheduler needs dask.distributed: pip install 'lincae[dask]'") from None
    is_file = scheduler.endswith(".json") or Path(scheduler).is_file()
    if is_file and not Path(scheduler).is_file():
        raise ConfigError(f"{scheduler}: no such scheduler file")
    try:
        client = Client(scheduler_file=scheduler) if is_file else Client(scheduler, timeout="30s")
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler!r} ({exc}); is it running?") from exc
    with client, joblib.parallel_config(backend="dask"):
        yield max(2, sum(client.nthreads().values()))


def scheduler_from_env() -> str | None:
    """The scheduler of ``LINCAE_SCHEDULER`` (None when unset or empty)."""
    return os.environ.get("LINCAE_SCHEDULER") or None
