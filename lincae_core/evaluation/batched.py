"""The evaluation protocol of many tracks at once: chunks of every track and every compared decode
share forward passes, several passes run at once.

The protocol's computations are tasks (:data:`~.protocol.Task`: generators that yield
:class:`~.protocol.Encode` and :class:`~.protocol.Decode` requests). :func:`run_tasks` advances
every task to its next request, answers all requests of a round together and sends each its
result, until every task has returned. Each round cuts all requests into chunks exactly as
:class:`~.protocol.ChunkCodec` does, drops duplicate chunks (the same audio encoded twice; the
same latents decoded with the same noise, noise role and steps twice, as the model card's gains
and step counts ask for), runs the rest in passes of about 8 s of audio (at most ``EvalConfig.batch_size``
chunks), one per core at once on one torch
thread each (:class:`lincae_core.decoding.forward.PassRunner`), and reassembles the chunks per
request. Decoding goes through :func:`lincae_core.decoding.forward.decode_windows`, whose output
per chunk does not depend on the batch; the encoder's does by float32 rounding (~1e-7), so the
scores equal the per-track protocol's (:func:`~.protocol.run_task`) within float32 rounding,
and are the same bits whatever the number of passes at once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from lincae_core.decoding.forward import PassRunner, decode_windows, default_jobs
from lincae_core.device import channels_last
from lincae_core.evaluation.protocol import (
    ChunkCodec,
    Decode,
    Encode,
    Task,
    chunk_audio,
    chunk_generator,
    overlap_add,
)
from lincae_core.inference import rule_batch_size

__all__ = ["run_tasks"]


def _digest(x: torch.Tensor) -> bytes:
    return hashlib.sha1(x.contiguous().numpy().tobytes()).digest()


def run_tasks(codec: ChunkCodec, tasks: Sequence[Task[Any]], jobs: int | None = None) -> list[Any]:
    """Run the tasks together on ``codec``'s model; return their results in order.

    Args:
        codec: The chunked codec of one model (chunking, seed, default steps).
        tasks: Protocol tasks (:func:`~.protocol.stems_task`, :func:`~.protocol.music_task`, ...).
        jobs: Passes at once (default: one per core on the CPU, 1 on a GPU); never changes a bit.
    """
    jobs = default_jobs(codec.model) if jobs is None or jobs < 1 else jobs
    cpu = codec.device.type == "cpu"
    # the passes' size must not depend on ``jobs``: the encoder's bits depend on its batch
    rule = rule_batch_size(codec.device.type, codec.chunk, codec.sample_rate, parallel=True)
    size = min(rule, codec.batch_size)
    size = size + size % 2 if cpu else size
    results: list[Any] = [None] * len(tasks)
    pending: dict[int, Any] = {}
    for i in range(len(tasks)):
        _advance(tasks, i, None, pending, results, first=True)
    with PassRunner[list[int]](jobs, one_thread=cpu) as runner, channels_last(codec.model, cpu):
        while pending:
            flat = [(i, j, r) for i, req in pending.items() for j, r in enumerate(_as_tuple(req))]
            answers: dict[tuple[int, int], torch.Tensor] = {}
            encodes = [(i, j, r) for i, j, r in flat if isinstance(r, Encode)]
            decodes = [(i, j, r) for i, j, r in flat if isinstance(r, Decode)]
            answers.update(_encode_all(codec, encodes, runner, size))
            answers.update(_decode_all(codec, decodes, runner, size, cpu))
            for i, req in list(pending.items()):
                got = [answers[(i, j)] for j in range(len(_as_tuple(req)))]
                _advance(tasks, i, tuple(got) if isinstance(req, tuple) else got[0], pending, results)
    return results


def _as_tuple(req: Any) -> tuple[Any, ...]:
    return req if isinstance(req, tuple) else (req,)


def _advance(
    tasks: Sequence[Task[Any]],
    i: int,
    value: Any,
    pending: dict[int, Any],
    results: list[Any],
    first: bool = False,
) -> None:
    try:
        pending[i] = next(tasks[i]) if first else tasks[i].send(value)
    except StopIteration as stop:
        pending.pop(i, None)
        results[i] = stop.value


def _run(
    runner: PassRunner[list[int]], items: list[Any], size: int, fn: Callable[[list[Any]], np.ndarray]
) -> list[np.ndarray]:
    """``fn`` over ``items`` in passes of ``size``; the outputs in item order."""
    out: list[np.ndarray] = [np.empty(0)] * len(items)

    def keep(done: list[tuple[list[int], np.ndarray]]) -> None:
        for idx, y in done:
            for k, row in zip(idx, y, strict=True):
                out[k] = row

    for start in range(0, len(items), size):
        idx = list(range(start, min(start + size, len(items))))
        batch = [items[k] for k in idx]
        keep(runner.submit(functools.partial(fn, batch), idx))
    keep(list(runner.drain()))
    return out


def _encode_all(
    codec: ChunkCodec, reqs: list[tuple[int, int, Encode]], runner: PassRunner[list[int]], size: int
) -> dict[tuple[int, int], torch.Tensor]:
    unique: dict[bytes, int] = {}
    chunks: list[torch.Tensor] = []
    where: list[tuple[int, int, torch.Tensor]] = []  # (task, request, index of each chunk [K, N])
    for i, j, r in reqs:
        c = torch.stack([chunk_audio(s, codec.chunk, codec.overlap) for s in r.signals])  # (K, N, L)
        idx = torch.empty(c.shape[:2], dtype=torch.long)
        for k in range(c.shape[0]):
            for n in range(c.shape[1]):
                key = _digest(c[k, n])
                if key not in unique:
                    unique[key] = len(chunks)
                    chunks.append(c[k, n])
                idx[k, n] = unique[key]
        where.append((i, j, idx))

    @torch.no_grad()
    def encode(batch: list[torch.Tensor]) -> np.ndarray:
        return codec.model.encode(torch.stack(batch).to(codec.device)).float().cpu().numpy()

    z = torch.from_numpy(np.stack(_run(runner, chunks, size, encode))) if chunks else torch.empty(0)
    return {(i, j): z[idx] for i, j, idx in where}


def _decode_all(
    codec: ChunkCodec,
    reqs: list[tuple[int, int, Decode]],
    runner: PassRunner[list[int]],
    size: int,
    cpu: bool,
) -> dict[tuple[int, int], torch.Tensor]:
    unique: dict[tuple[bytes, str, int, int, str | None], int] = {}
    # (latent [D, Z], track, chunk, steps, noise role)
    items: list[tuple[torch.Tensor, str, int, int, str | None]] = []
    where: list[tuple[int, int, Decode, torch.Tensor]] = []
    for i, j, r in reqs:
        steps = r.steps or codec.steps
        k, n = r.z.shape[:2]
        roles = r.roles or (None,) * k
        idx = torch.empty((k, n), dtype=torch.long)
        for a in range(k):
            for b in range(n):
                key = (_digest(r.z[a, b]), r.track, b, steps, roles[a])
                if key not in unique:
                    unique[key] = len(items)
                    items.append((r.z[a, b], r.track, b, steps, roles[a]))
                idx[a, b] = unique[key]
        where.append((i, j, r, idx))
    audio: list[np.ndarray] = [np.empty(0)] * len(items)
    for steps in sorted({it[3] for it in items}):  # a pass holds one step count
        sub = [k for k, it in enumerate(items) if it[3] == steps]

        def decode(batch: list[int], steps: int = steps) -> np.ndarray:
            lat = torch.stack([items[k][0] for k in batch])
            gens = [chunk_generator(codec.seed, items[k][1], items[k][2], items[k][4]) for k in batch]
            return decode_windows(codec.model, lat, gens, steps, cpu)[:, : codec.chunk]

        for k, y in zip(sub, _run(runner, sub, size, decode), strict=True):
            audio[k] = y
    out = {}
    for i, j, r, idx in where:
        pieces = torch.from_numpy(np.stack([audio[k] for k in idx.flatten().tolist()]))
        out[(i, j)] = overlap_add(pieces.reshape(*idx.shape, codec.chunk), codec.overlap, r.length)
    return out
