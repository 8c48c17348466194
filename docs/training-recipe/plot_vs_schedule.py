"""Validation MSS (1 decoding step) of each run against its Δt and its learning rate at that step.

python docs/training-recipe/plot_vs_schedule.py runs/{control,endexp1,...} -o docs/training-recipe-vs-dt.png
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("runs", nargs="+", type=Path)
p.add_argument("-o", "--out", type=Path, required=True)
args = p.parse_args()
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
for run in args.runs:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = {r["step"]: r for r in rows if "dt" in r}
    valid = [r for r in rows if r.get("kind") == "valid" and r["step"] in train]
    for ax, key in zip(axes, ("dt", "lr"), strict=True):
        ax.plot([train[r["step"]][key] for r in valid], [r["mss"] for r in valid], marker="o", label=run.name)
for ax, title in zip(
    axes, ("valid MSS (1 step) vs Δt at that step", "valid MSS (1 step) vs LR at that step"), strict=True
):
    ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_ylabel("valid MSS ↓")
axes[0].set_xlabel("Δt (log; schedule runs right→left)")
axes[1].set_xlabel("learning rate (log)")
axes[0].invert_xaxis()
axes[1].invert_xaxis()
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(args.out, dpi=110)
print(args.out)
