"""Benchmark what ``lincae eval``'s controls cost, and what independent decode noise changes.

Three runs of the same checkpoints on the same tracks, batched (:mod:`lincae_core.evaluation.batched`),
on the same machine in one process:

- **protocol**: the paper's protocol alone (``stems_task`` and ``music_task`` per track, as
  ``lincae eval`` ran before the controls);
- **shared**: ``evaluate(noise="shared")``: plus do nothing and decode-then-subtract (4 more
  decodes a stems track: ``Dec(Enc(mix − sᵢ))``);
- **both** (the default): plus independent decode noise (``Dec(Enc(mix))`` and each
  ``Dec(Enc(sᵢ))`` decoded again with noise of their own: 5 more decodes a stems track; ``Dec(z_x)``:
  1 more a Table 2 track).

It prints the seconds of each and, per checkpoint, the shared and independent figures of the decoder
and of separation (SI-SDR against ``Dec(Enc(sᵢ))``, mean of the 4 stems).

Usage::

    python scripts/bench_eval_controls.py                          # tests' size: 2 synthetic tracks x 2.5 s
    python scripts/bench_eval_controls.py --stems data/corpus16k/valid --max-tracks 4 --max-seconds 6 \\
        -c default -c models/baseline-tiny --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import make_stems  # noqa: E402

from lincae_core.config import EvalConfig  # noqa: E402
from lincae_core.evaluation.batched import run_tasks  # noqa: E402
from lincae_core.evaluation.corpus import find_stem_tracks, load_stems  # noqa: E402
from lincae_core.evaluation.protocol import STEMS, ChunkCodec, music_task, stems_task  # noqa: E402
from lincae_core.evaluation.runner import NamedModel, evaluate, load_named_models  # noqa: E402


def protocol_only(models: list[NamedModel], stems_dir: Path, config: EvalConfig, jobs: int | None) -> None:
    """The protocol's tasks alone, as the runner batched them before the controls."""
    tracks = find_stem_tracks(stems_dir)[0][: config.max_tracks]
    gains = config.gains.sample(np.random.default_rng(config.seed), len(tracks))
    for m in models:
        codec, sr = ChunkCodec(m.model, config), m.model.config.sample_rate
        tasks: list[Any] = []
        for track, gain in zip(tracks, gains, strict=True):
            stems = load_stems(track, sr, config.max_seconds)
            tasks.append(stems_task(sr, stems, f"stems/{track.name}"))
            tasks.append(music_task(sr, torch.stack(stems).sum(0), gain, f"music/{track.name}"))
        run_tasks(codec, tasks, jobs)


def figures(controls: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per noise setting: the decoder SNRs and the mean separation SI-SDR vs Dec(Enc(sᵢ)) per estimate."""
    out = {}
    for noise, node in controls.items():
        row = {k: node["decoder"][k] for k in ("add_dec_snr", "dec_hom_snr", "add_dec_mss", "dec_hom_mss")}
        for est in ("latent_subtract", "decode_subtract", "decode_subtract_stems"):
            row[f"{est}_si_sdr_ae"] = sum(node[est][s]["ae"]["si_sdr"] for s in STEMS) / len(STEMS)
            row[f"{est}_mdx_true"] = sum(node[est][s]["true"]["mdx_global"] for s in STEMS) / len(STEMS)
        out[noise] = row
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stems", type=Path, default=None, help="stems folder (default: 2 synthetic tracks)")
    p.add_argument("-c", "--checkpoint", dest="checkpoints", action="append", default=[])
    p.add_argument("--max-tracks", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=2.5)
    p.add_argument("--jobs", type=int, default=0, help="passes at once (0: one per core)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_grad_enabled(False)
    models = load_named_models(a.checkpoints or ["default"])
    jobs = a.jobs or None
    with tempfile.TemporaryDirectory() as tmp:
        stems_dir = a.stems or make_stems(Path(tmp) / "stems", a.max_tracks, a.max_seconds, 16000)
        config = EvalConfig(example_seconds=None, max_tracks=a.max_tracks, max_seconds=a.max_seconds)
        warm = EvalConfig(example_seconds=None, max_tracks=1, max_seconds=1.0, noise="shared")
        evaluate(models, stems_dir, config=warm, jobs=jobs)  # first-call costs out of the timings
        load_before = os.getloadavg()[0]
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        protocol_only(models, stems_dir, config, jobs)
        seconds["protocol"] = time.perf_counter() - t0
        results = {}
        for noise in ("shared", "both"):
            t0 = time.perf_counter()
            cfg = EvalConfig(**{**config.to_dict(), "noise": noise})
            results[noise] = evaluate(models, stems_dir, config=cfg, jobs=jobs)
            seconds[noise] = time.perf_counter() - t0
    res = results["both"]
    report = {
        "cpus": os.cpu_count(),
        "load": [load_before, os.getloadavg()[0]],
        "tracks": res.stem_tracks,
        "seconds": seconds,
        "figures": {m.name: figures(res.controls(m.name)) for m in models},
        "do_nothing_mdx_true": {
            s: v[s]["true"]["mdx_global"] for v in res.do_nothing_summary().values() for s in STEMS
        },
    }
    print(
        f"{len(res.stem_tracks)} tracks x {a.max_seconds:g} s, {len(models)} model(s), load {report['load']}"
    )
    base = seconds["protocol"]
    for k, v in seconds.items():
        print(f"  {k:<9} {v:7.1f} s  {v / base:5.2f}x the protocol alone")
    print(json.dumps({k: report[k] for k in ("figures", "do_nothing_mdx_true")}, indent=1))
    if a.out:
        a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
