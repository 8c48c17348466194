"""``lincae train -o RUN_DIR [--config run.json] [--data DIR[:W]]... [--resume]``: train a Lin-CAE."""

from __future__ import annotations

import os
import sys

import click

from lincae_cli.progress import TrainBar


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
@click.option(
    "--schedule-steps",
    "total_steps",
    type=int,
    help="Schedule length K: the LR, Delta-t and gain annealing run over K steps.",
)
@click.option("--steps", "steps_alias", type=int, hidden=True, help="Old spelling of --schedule-steps.")
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
@click.option(
    "--device",
    envvar="LINCAE_DEVICE",
    help="Where the model trains: auto (CUDA when available; the default), cpu or cuda[:i]. "
    "Env: LINCAE_DEVICE.",
)
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format.")
@click.option("--threads", type=int, help="CPU threads (1 is faster when other work shares the cores).")
@click.option("--stop-at", type=int, help="Stop (and save) at this step, before --schedule-steps.")
@click.option("--max-minutes", type=float, help="Stop (and save) after this much wall time.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR from its state.pt.")
def train_cmd(
    out_dir: str,
    config_file: str | None,
    stop_at: int | None,
    max_minutes: float | None,
    resume: bool,
    steps_alias: int | None,
    **overrides: object,
) -> None:
    """Train a Lin-CAE (or the baseline/ablations) into RUN_DIR; CLI options override --config."""
    from lincae_core import resolve_train_config, train_model  # torch only when the command runs
    from lincae_core.device import resolve_device  # torch only when the command runs

    if steps_alias is not None:
        if overrides.get("total_steps") is not None:
            raise click.UsageError("give --schedule-steps only (--steps is its old spelling).")
        click.echo(
            "warning: train --steps is now --schedule-steps (--steps means decoding steps elsewhere)",
            err=True,
        )
        overrides["total_steps"] = steps_alias
    if overrides.get("device") is not None:
        resolve_device(str(overrides["device"]))  # the one resolver: a bad name fails here, in one line
    if overrides.get("data") == ():
        overrides["data"] = None
    cfg = resolve_train_config(config_file, out_dir, resume, overrides)
    main = int(os.environ.get("RANK", "0")) == 0
    bar = TrainBar(enabled=main)
    try:
        summary = train_model(
            cfg,
            out_dir,
            resume=resume,
            stop_at=stop_at,
            progress=bar,
            max_seconds=None if max_minutes is None else 60.0 * max_minutes,
            command=" ".join(["lincae", *sys.argv[1:]]),
        )
    finally:
        bar.close()
    if main:
        state = "finished" if summary.finished else ("interrupted" if summary.interrupted else "stopped")
        click.echo(
            f"{state} at step {summary.step}/{summary.total_steps}; EMA checkpoint "
            f"{summary.out_dir / 'ema'} (model id {(summary.model_id or '')[:12]})"
        )
