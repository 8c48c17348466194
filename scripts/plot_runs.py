"""Plot the learning curves of several `lincae train` runs side by side (one PNG).

Reads each run folder's ``metrics.jsonl``: the training loss (a moving mean over ``--smooth``
logged rows) and the periodic validation rows (reconstruction MSS, encoder homogeneity and
additivity errors, decoder additivity MSS) against the step.

    python scripts/plot_runs.py training/reproduce/{lincae,baseline,no-additivity,no-homogeneity} \
        -o docs/reproduction/learning_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PANELS = (
    ("loss", "training loss (moving mean)"),
    ("mss", "valid: reconstruction MSS ↓"),
    ("enc_hom", "valid: Enc-Hom error ↓"),
    ("enc_add", "valid: Add Enc error ↓"),
    ("dec_add_mss", "valid: Add Dec MSS ↓"),
)


def read_run(run: Path) -> tuple[list[dict], list[dict]]:
    """Return (training rows, validation rows) of a run folder's metrics.jsonl."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"plot_runs: {path} does not exist (expected a `lincae train` run folder)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r], [r for r in rows if r.get("kind") == "valid"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (label = folder name)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output PNG")
    p.add_argument("--smooth", type=int, default=50, help="moving-mean width in logged rows")
    args = p.parse_args(argv)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.4))
    for run in args.runs:
        train, valid = read_run(run)
        if train:
            loss = np.array([r["loss"] for r in train])
            width = max(1, min(args.smooth, len(loss)))
            smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
            axes[0].plot([r["step"] for r in train][width - 1 :], smooth, label=run.name)
        for ax, (key, _) in zip(axes[1:], PANELS[1:], strict=True):
            pts = [(r["step"], r[key]) for r in valid if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=run.name)
    for ax, (_, title) in zip(axes, PANELS, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
