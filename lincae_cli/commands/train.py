"""``lincae train -o RUN_DIR [--config run.json] [--data DIR[:W]]... [--resume]``: train a Lin-CAE."""

from __future__ import annotations

import os
import sys

import click
from tqdm import tqdm

from lincae_core import resolve_train_config, train_model


@click.command("train")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="JSON TrainConfig file.")
@click.option(
    "--preset",
    help="Model preset: paper (the default; GPU-sized), small or tiny (CPU-sized; "
    "they train with the CPU recipe unless overridden).",
)
@click.option("--data", multiple=True, help="Source PATH[:WEIGHT] (folder or .tar shards); repeatable.")
@click.option("--valid", help="Held-out validation folder.")
@click.option("--steps", "total_steps", type=int, help="Schedule length K (LR, Delta-t, gain annealing).")
@click.option("--batch-size", type=int, help="Crops per step (per process), before mixtures.")
@click.option("--segment-frames", type=int, help="STFT frames per crop (64 -> 8 latents).")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--warmup-steps", type=int, help="Linear warm-up steps (default K/80).")
@click.option("--additivity/--no-additivity", default=None, help="Implicit additivity (mixtures).")
@click.option("--homogeneity/--no-homogeneity", default=None, help="Implicit homogeneity (gains).")
@click.option("--mix-weights", type=click.Choice(["convex", "sum"]), help="Mixture weights (code / paper).")
@click.option("--anneal/--no-anneal", default=None, help="Anneal the gain range with C(k).")
@click.option(
    "--baseline-mixtures/--no-baseline-mixtures",
    default=None,
    help="Baseline only: append B convex mixtures that the encoder encodes (the official "
    "Music2Latent configuration; default on for the baseline).",
)
@click.option("--end-exp", type=float, help="Delta-t end exponent (2.0 Lin-CAE, 3.0 M2L).")
@click.option("--seed", type=int, help="Run seed.")
@click.option("--checkpoint-every", type=int, help="Save state.pt and ema/ every N steps.")
@click.option("--valid-every", type=int, help="Validate the EMA weights every N steps.")
@click.option("--device", help="Where the model runs: auto (default), cpu or cuda[:i].")
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format.")
@click.option("--threads", type=int, help="CPU threads (1 is faster when other work shares the cores).")
@click.option("--stop-at", type=int, help="Stop (and save) at this step, before --steps.")
@click.option("--max-minutes", type=float, help="Stop (and save) after this much wall time.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR from its state.pt.")
def train_cmd(
    out_dir: str,
    config_file: str | None,
    stop_at: int | None,
    max_minutes: float | None,
    resume: bool,
    **overrides: object,
) -> None:
    """Train a Lin-CAE (or the baseline/ablations) into RUN_DIR; CLI options override --config."""
    if overrides.get("data") == ():
        overrides["data"] = None
    cfg = resolve_train_config(config_file, out_dir, resume, overrides)
    main = int(os.environ.get("RANK", "0")) == 0
    bars: list[tqdm] = []

    def progress(step: int, total: int, row: dict[str, float]) -> None:
        if not bars:  # created on the first step, so setup errors print without a bar
            bars.append(
                tqdm(total=total, initial=step - 1, file=sys.stderr, disable=not main, dynamic_ncols=True)
            )
        bars[0].set_postfix(
            loss=f"{row['loss']:.4g}",
            lr=f"{row['lr']:.2e}",
            gain=f"[{row['a_min']:.2f},{row['a_max']:.2f}]",
            refresh=False,
        )
        bars[0].update(step - bars[0].n)

    try:
        summary = train_model(
            cfg,
            out_dir,
            resume=resume,
            stop_at=stop_at,
            progress=progress,
            max_seconds=None if max_minutes is None else 60.0 * max_minutes,
            command=" ".join(["lincae", *sys.argv[1:]]),
        )
    finally:
        for bar in bars:
            bar.close()
    if main:
        state = "finished" if summary.finished else ("interrupted" if summary.interrupted else "stopped")
        click.echo(
            f"{state} at step {summary.step}/{summary.total_steps}; EMA checkpoint "
            f"{summary.out_dir / 'ema'} (model id {(summary.model_id or '')[:12]})"
        )
