"""The decoder's forward pass as the batched decoders run it, and passes run in parallel.

:func:`decode_windows` decodes equal-length windows ``[N, D, w]`` with one noise generator per
window. On the CPU the latent upsampler runs window by window and the denoiser on the whole
batch, so that a window's audio does not depend on its batch neighbours. Torch picks its
kernels by batch size and thread count (differences of ~1e-8 in the audio, ~4e-7 in the latent
upsampler): the upsampler's 1x1 ``Conv1d`` gives other bits for a batch of one than for two or
more; on one thread the last row of a batch of odd size takes another kernel than the others
(``Linear`` as gemv, small convolutions), from 16 rows on the 1x1 convolutions go to oneDNN, and
the ``tiny`` preset's rows differ between batches of 2, 3 and 4. So the model runs on exactly
two windows at a time (an odd batch gets a dummy) and every pass of a decode runs on one torch
thread: then a window's bits depend on the window alone (``tests/test_decode_batched.py``).
Pairs cost no more per window than larger calls on these CPUs (docs/encoding.md, "Decode"). The upsampler
costs about the same per window alone or batched on these CPUs (docs/encoding.md, "Decode").

:class:`PassRunner` runs several passes at once, one per worker, each on one torch thread (as the
encoder's parallel passes, :mod:`lincae_core.encoding.run`), and hands results back in submission
order, so what is computed and in which order it is summed does not depend on the number of
workers.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np
import torch

from lincae_core.device import torch_threads
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE

__all__ = ["PassRunner", "decode_windows", "default_jobs"]

T = TypeVar("T")


def default_jobs(model: LinCAE) -> int:
    """Passes at once by default: one per torch thread (core) on the CPU, one on a GPU."""
    device = next(model.parameters()).device
    return 1 if device.type != "cpu" else max(1, torch.get_num_threads())


# Rows of one forward call on the CPU. Only a fixed size gives the same bits per row whatever the
# batch: on one thread the ``tiny`` preset's rows came out differently at 2, 3 and 4 rows and
# ``micro``'s differently at 1 and 16; pairs cost no more per window than larger calls here.
_CPU_ROWS = 2


@torch.no_grad()
def decode_windows(
    model: LinCAE,
    z: np.ndarray | torch.Tensor,
    generators: list[torch.Generator],
    steps: int,
    invariant: bool | None = None,
) -> np.ndarray:
    """Decode equal-length latent windows ``[N, D, w]`` to audio ``[N, decoded_length(w)]``.

    :meth:`LinCAE.decode_representation` with one noise generator per window, then
    :func:`transforms.from_representation`.

    Args:
        model: The autoencoder.
        z: Raw latents of ``N`` windows of equal length.
        generators: One noise generator per window.
        steps: Consistency sampling steps.
        invariant: Make every window's audio independent of the batch (default: on the CPU): the
            model runs on exactly ``_CPU_ROWS`` windows at a time (an odd batch gets a dummy).
            Off: one call for the whole batch (GPUs).
    """
    lat = torch.as_tensor(z).float()
    device = next(model.parameters()).device
    n = lat.shape[0]
    if len(generators) != n:
        raise ValueError(f"Expected {n} generators (one per window). Got {len(generators)}.")
    if invariant is None:
        invariant = device.type == "cpu"
    if not invariant:
        return _decode_rows(model, lat.to(device), generators, steps)
    out = []
    for i in range(0, n, _CPU_ROWS):
        rows, gens = lat[i : i + _CPU_ROWS], generators[i : i + _CPU_ROWS]
        while rows.shape[0] < _CPU_ROWS:  # the last row would take other kernels: add a dummy
            rows, gens = torch.cat([rows, rows[:1]]), [*gens, torch.Generator().manual_seed(0)]
        out.append(_decode_rows(model, rows.to(device), gens, steps)[: min(_CPU_ROWS, n - i)])
    return np.concatenate(out)


def _decode_rows(
    model: LinCAE, lat: torch.Tensor, generators: list[torch.Generator], steps: int
) -> np.ndarray:
    """One call: the model's sampling and the inverse STFT."""
    rep = model.decode_representation(lat, steps=steps, generators=generators)
    return transforms.from_representation(rep, model.config).float().cpu().numpy()


class PassRunner(Generic[T]):
    """Run forward passes ``jobs`` at a time, each on one torch thread, results in submission order.

    ``submit(fn, tag)`` returns the finished ``(tag, result)`` pairs that had to be waited for to
    keep at most ``jobs`` passes in flight; ``drain()`` the rest. With ``jobs == 1`` a pass runs
    at once in the calling thread (still on one torch thread when ``one_thread``).
    """

    def __init__(self, jobs: int, one_thread: bool = True) -> None:
        self.jobs = max(1, int(jobs))
        self.one_thread = one_thread
        self.pool: ThreadPoolExecutor | None = None
        self.inflight: deque[tuple[Future[np.ndarray], T]] = deque()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> PassRunner[T]:
        # Process-wide: every pass (and only passes run meanwhile) on one thread.
        self._stack.enter_context(torch_threads(1 if self.one_thread else None))
        if self.jobs > 1:
            self.pool = self._stack.enter_context(
                ThreadPoolExecutor(self.jobs, thread_name_prefix="lincae-decode")
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for fut, _ in self.inflight:
            fut.cancel()
        self.inflight.clear()
        self._stack.close()

    def submit(self, fn: Callable[[], np.ndarray], tag: T) -> list[tuple[T, np.ndarray]]:
        """Start one pass; return the passes finished meanwhile (oldest first)."""
        if self.pool is None:
            return [(tag, fn())]
        done = []
        while len(self.inflight) >= self.jobs:
            done.append(self._pop())
        self.inflight.append((self.pool.submit(fn), tag))
        return done

    def drain(self) -> Iterator[tuple[T, np.ndarray]]:
        """Wait for every pass in flight, oldest first."""
        while self.inflight:
            yield self._pop()

    def _pop(self) -> tuple[T, np.ndarray]:
        fut, tag = self.inflight.popleft()
        return tag, fut.result()
