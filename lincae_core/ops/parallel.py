"""Where the work units of an operation run: this process, local joblib workers, or a Dask cluster.

:func:`run_units` is the one runner of the store operations (:mod:`~lincae_core.ops.engine`) and
the export (:mod:`~lincae_core.ops.export`). ``scheduler`` is a ``dask.distributed`` scheduler
address (``tcp://host:8786``) or a scheduler file (``scheduler.json``, as written by
``dask scheduler --scheduler-file`` or dask-jobqueue; the CLI's ``--scheduler``, env
``LINCAE_SCHEDULER``). Each unit writes its own chunk-aligned blocks of the output store (or its
own shards), so the result is byte-identical whichever backend runs the units and in whatever
order (tests/test_ops_dask.py). The workers must see the stores at the same paths (a shared file
system) and have lincae installed. Units are frozen dataclasses: picklable for loky and Dask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import joblib

from lincae_core.errors import ConfigError

__all__ = ["parallel_backend", "run_units"]

U = TypeVar("U")


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


def run_units(
    fn: Callable[..., int],
    units: Callable[[int], Iterable[U]],
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    in_process: Mapping[str, Any] | None = None,
) -> None:
    """Run ``fn(unit)`` for every work unit, here, on joblib workers or on a Dask cluster.

    Args:
        fn: The unit's work; returns how much it did (frames, tracks), passed to ``progress``.
        units: The work units for a number of workers (``units(n_jobs)``: the backend decides how
            many workers there are, and the caller how finely to cut the work for them).
        jobs: Local joblib workers (-1: every core); ignored with a scheduler.
        scheduler: A Dask scheduler address or scheduler file (None: local).
        progress: Called with each unit's result, as units finish (in any order), unless 0.
        in_process: Keyword arguments of ``fn`` when the units run one after another in this
            process (state kept across units: readers, buffers); never shipped to workers.
    """
    with parallel_backend(jobs, scheduler) as n_jobs:
        if n_jobs == 1:
            extra = dict(in_process or {})
            results: Iterable[int] = (fn(u, **extra) for u in units(n_jobs))
        else:
            par = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
            results = par(joblib.delayed(fn)(u) for u in units(n_jobs))
        for n in results:
            if progress is not None and n:
                progress(n)
