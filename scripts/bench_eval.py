"""Benchmark ``lincae eval`` and ``lincae card``: the batched protocol against the per-track one,
in one run on the same machine.

``evaluate(batched=False)`` is the protocol as it ran before (track by track, model by model, each
signal set's chunks in passes of ``EvalConfig.batch_size`` on torch's threads);
``evaluate(batched=True)`` (the default) puts the chunks of a group of tracks and all their
compared decodes (reconstruction, gained, summed, separated) in shared passes, one per core at
once, duplicates once. The same for ``measure_model`` (``lincae card``), where every gain and step
count of a track repeats its encode and its 1-step decode. Models: random ``tiny`` weights, two
with ``recommended_steps`` 3 and one with 1 (each is evaluated at its recommended steps), as in
the issue. The scores of both paths are compared (max relative difference).

Usage::

    python scripts/bench_eval.py --tracks 6 --seconds 12 --out bench_eval.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import make_signal  # noqa: E402

from lincae_core.config import EvalConfig, get_preset  # noqa: E402
from lincae_core.evaluation.card import measure_model  # noqa: E402
from lincae_core.evaluation.protocol import STEMS  # noqa: E402
from lincae_core.evaluation.runner import NamedModel, evaluate  # noqa: E402
from lincae_core.nn.model import LinCAE  # noqa: E402


def make_stems(root: Path, tracks: int, seconds: float, rate: int) -> Path:
    for t in range(tracks):
        (root / f"track{t:02d}").mkdir(parents=True)
        for i, stem in enumerate(STEMS):
            sf.write(
                root / f"track{t:02d}" / f"{stem}.wav", 0.5 * make_signal(rate, seconds, 10 * t + i), rate
            )
    return root


def random_model(seed: int, steps: int) -> LinCAE:
    torch.manual_seed(seed)
    model = LinCAE(get_preset("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.card = {"recommended_steps": steps}
    return model.eval()


def max_rel(a: Any, b: Any) -> float:
    """Largest relative difference between two nests of numbers (NaN where both are NaN: 0)."""
    if isinstance(a, dict):
        return max((max_rel(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list):
        return max((max_rel(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return 0.0
        return abs(a - b) / max(abs(a), 1e-3)
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracks", type=int, default=6)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--card-tracks", type=int, default=2)
    p.add_argument("--card-seconds", type=float, default=4.0)
    p.add_argument("--jobs", type=int, default=0, help="passes at once for the batched path (0: per core)")
    p.add_argument(
        "--noise",
        default="shared",
        choices=("shared", "both"),
        help="decode noise settings reported (shared: the paper's protocol alone, as before the "
        "separation controls; both: with independent noise, the eval default)",
    )
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--skip-card", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_grad_enabled(False)
    models = [NamedModel("a3", random_model(0, 3)), NamedModel("b3", random_model(1, 3))]
    models.append(NamedModel("c1", random_model(2, 1)))
    result: dict[str, Any] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "args": {k: str(v) for k, v in vars(a).items()},
        "load_before": os.getloadavg(),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        if not a.skip_eval:
            stems = make_stems(tmp / "stems", a.tracks, a.seconds, 16000)
            config = EvalConfig(example_seconds=None, noise=a.noise)
            times, res = {}, {}
            for name, batched in (("per-track", False), ("batched", True)):
                t0 = time.perf_counter()
                res[name] = evaluate(models, stems, config=config, batched=batched, jobs=a.jobs or None)
                times[name] = time.perf_counter() - t0
                print(f"  eval {name}: {times[name]:.1f} s", flush=True)
            diff = max_rel(
                {t: getattr(res["per-track"], t) for t in ("table1", "table2")},
                {t: getattr(res["batched"], t) for t in ("table1", "table2")},
            )
            rows.append(
                {"what": f"eval {a.tracks} x {a.seconds:g} s, 3 models", "seconds": times, "max_rel": diff}
            )
        if not a.skip_card:
            stems = make_stems(tmp / "card", a.card_tracks, a.card_seconds, 16000)
            times, res = {}, {}
            model = random_model(0, 1)
            for name, batched in (("per-track", False), ("batched", True)):
                t0 = time.perf_counter()
                res[name] = measure_model(
                    model,
                    stems,
                    max_tracks=a.card_tracks,
                    max_seconds=a.card_seconds,
                    batched=batched,
                    jobs=a.jobs or None,
                )
                times[name] = time.perf_counter() - t0
                print(f"  card {name}: {times[name]:.1f} s", flush=True)
            keys = ("reconstruction", "linearity", "homogeneity_by_gain", "separation", "origin")
            diff = max_rel({k: res["per-track"][k] for k in keys}, {k: res["batched"][k] for k in keys})
            rows.append(
                {"what": f"card {a.card_tracks} x {a.card_seconds:g} s", "seconds": times, "max_rel": diff}
            )
    result["rows"] = rows
    result["load_after"] = os.getloadavg()
    load = f"load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}"
    print(f"\nevaluation, tiny (random weights), CPU x{os.cpu_count()}, {load}")
    print(f"{'':<34}{'per-track':>11}{'batched':>10}{'speed-up':>10}{'max rel diff':>14}")
    for r in rows:
        s = r["seconds"]
        print(
            f"{r['what']:<34}{s['per-track']:>10.1f}s{s['batched']:>9.1f}s"
            f"{s['per-track'] / s['batched']:>9.2f}x{r['max_rel']:>14.1e}"
        )
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
