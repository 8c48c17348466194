"""Two-process DistributedDataParallel training on CPU (gloo): ranks stay in sync, data is split."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp

from lincae_core.config import TrainConfig
from lincae_core.train.state import load_state

SMALL_MODEL = {"base_channels": 4, "bottleneck_base_channels": 32, "cond_channels": 16, "latent_dim": 8}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, cfg_dict: dict[str, object], out: str, report: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    from lincae_core.train.loop import train

    try:
        summary = train(TrainConfig.from_dict(cfg_dict), out)
        Path(report, f"rank{rank}.txt").write_text(f"{summary.step} {summary.weights_sha256}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        t = np.arange(16000) / 16000
        x = 0.3 * np.sin(2 * np.pi * 200 * (i + 1) * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(corpus / f"x{i}.wav", x.astype(np.float32), 16000)
    cfg = TrainConfig(
        preset="tiny",
        model=SMALL_MODEL,
        data=(str(corpus),),
        total_steps=4,
        batch_size=2,
        segment_frames=16,
        ema_every=2,
        checkpoint_every=100,
        device="cpu",
    )
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), cfg.to_dict(), str(out), str(tmp_path)), nprocs=2, join=True)
    reports = [(tmp_path / f"rank{r}.txt").read_text().split() for r in range(2)]
    assert reports[0] == reports[1]
    assert reports[0][0] == "4"
    state = load_state(out / "state.pt")
    assert state["world_size"] == 2
    assert len(state["ranks"]) == 2
    gens = [r["sampler"]["generator"] for r in state["ranks"]]
    assert not torch.equal(gens[0], gens[1])  # each rank draws its own crops
    torch.manual_seed(cfg.seed)
    from lincae_core.nn.model import LinCAE

    init = LinCAE(cfg.model_config()).state_dict()
    assert any(not torch.equal(init[k], state["model"][k]) for k in init)  # it trained
