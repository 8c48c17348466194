"""``lincae eval --stems DIR [--music DIR] -c CKPT ... -o REPORT_DIR``: the paper's evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lincae_cli.options import device_option, json_option, overwrite_option
from lincae_cli.progress import labelled_progress
from lincae_core import EvalConfig

_DEFAULTS = EvalConfig()


JOBS_HELP = (
    "Forward passes at once, each on one thread (0: one per core on CPU, 1 on a GPU); chunks of "
    "every track and decode share passes; the numbers are the same whatever the count."
)


@click.command("eval")
@click.option(
    "--stems",
    "stems_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="MUSDB18-HQ-style folder: <track>/{bass,drums,other,vocals}.wav (Table 1).",
)
@click.option(
    "--music",
    "music_dir",
    type=click.Path(exists=True),
    help="Folder of music files for Table 2 (default: the stems' mixtures).",
)
@click.option(
    "-c",
    "--checkpoint",
    "checkpoints",
    multiple=True,
    help="Checkpoint directory, or 'default'; repeat to compare several.",
)
@click.option("--name", "names", multiple=True, help="Row name of each -c, in order (default: dir name).")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Report folder (created; an existing report is refused unless --overwrite).",
)
@click.option("--max-tracks", type=int, help="Evaluate only the first N tracks of each folder.")
@click.option("--max-seconds", type=float, help="Crop every track to its first S seconds.")
@click.option("--chunk-s", type=float, default=_DEFAULTS.chunk_s, show_default=True, help="Chunk length.")
@click.option(
    "--overlap-s",
    type=float,
    default=_DEFAULTS.overlap_s,
    show_default=True,
    help="Overlap of consecutive chunks (linear cross-fade).",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 64),
    default=None,
    help="Decoding steps [default: each checkpoint's recommended_steps, else 1; the paper uses 1].",
)
@click.option(
    "--seed",
    type=int,
    default=_DEFAULTS.seed,
    show_default=True,
    help="Seed of the decode noise and of the homogeneity gains.",
)
@click.option(
    "--gain-dist",
    default=_DEFAULTS.gain_dist,
    show_default=True,
    help="Per-track homogeneity gain: choice:A,B,... or uniform:LO:HI.",
)
@click.option(
    "--batch-size",
    type=int,
    default=_DEFAULTS.batch_size,
    show_default=True,
    help="Chunks per encoder/decoder call.",
)
@click.option(
    "--example-stem",
    type=click.Choice(["bass", "drums", "other", "vocals"]),
    default="vocals",
    show_default=True,
    help="Stem shown in spectrograms.png.",
)
@click.option(
    "--example-seconds",
    type=float,
    default=_DEFAULTS.example_seconds,
    show_default=True,
    help="Audio of the example track kept for the WAVs and spectrograms (0: all).",
)
@click.option(
    "--noise",
    type=click.Choice(["both", "shared"]),
    default=_DEFAULTS.noise,
    show_default=True,
    help="Decode noise settings reported: both (shared, the paper's protocol, and independent noise "
    "per compared decode) or shared only (fewer decodes).",
)
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default=True, help=JOBS_HELP)
@device_option
@overwrite_option
@json_option
def evaluate_cmd(
    stems_dir: str,
    music_dir: str | None,
    checkpoints: tuple[str, ...],
    names: tuple[str, ...],
    out_dir: str,
    example_stem: str,
    example_seconds: float,
    jobs: int,
    device: str,
    overwrite: bool,
    as_json: bool,
    **settings: object,
) -> None:
    """Evaluate checkpoints side by side with the paper's protocol and write a report."""
    from lincae_core import (
        evaluate,
        load_named_models,
        summary_tables,
        write_report,
    )  # torch only when the command runs

    if (Path(out_dir) / "report.md").exists() and not overwrite:
        raise click.UsageError(
            f"{out_dir} already holds a report; use --overwrite to replace it, or another -o/--out."
        )
    config = EvalConfig(example_seconds=example_seconds or None, **settings)  # type: ignore[arg-type]
    models = load_named_models(checkpoints, names, device=device)
    with labelled_progress() as progress:
        result = evaluate(models, stems_dir, music_dir, config, progress=progress, jobs=jobs or None)
    files = write_report(result, out_dir, stem=example_stem)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "files": files, "report_dir": out_dir}))
    else:
        click.echo(summary_tables(result))
        click.echo(f"report: {out_dir}/report.md ({', '.join(files)})")
