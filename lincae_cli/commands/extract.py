"""``lincae extract MIX --minus ACC [--minus ...] [-o OUT]``: latent-arithmetic separation;
``lincae extract MIX --stem NAME=STORE ... [--consistent] [-o OUTDIR]``: every stem at once."""

from __future__ import annotations

import json
from typing import Any

import click

from lincae_cli.commands._ops_common import (
    echo_result,
    echo_warnings,
    missing_option,
    origin_option,
    require_complete_option,
    store_out_option,
)
from lincae_cli.options import (
    EXIT_PARTIAL,
    force_option,
    jobs_option,
    json_option,
    overwrite_option,
    scheduler_option,
)
from lincae_cli.progress import frame_progress
from lincae_core import extract_stems, extract_store, operation_warnings


def _stems(values: tuple[str, ...]) -> dict[str, str]:
    stems: dict[str, str] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise click.UsageError(f"--stem: expected NAME=STORE, e.g. vocals=voc.zarr; got {v!r}")
        if name in stems:
            raise click.UsageError(f"--stem: expected each stem name once; got {name!r} twice")
        stems[name] = path
    return stems


@click.command("extract")
@click.argument("mix", type=click.Path())
@click.option(
    "--minus",
    "minus",
    multiple=True,
    type=click.Path(),
    help="Store to subtract, paired by key (repeat for several).",
)
@click.option(
    "--stem",
    "stem",
    multiple=True,
    metavar="NAME=STORE",
    help="A stem of MIX (repeat, at least two): writes OUT/NAME.zarr = z_MIX minus the "
    "other stems (or, --consistent, mixture-consistent estimates).",
)
@click.option(
    "--consistent",
    is_flag=True,
    help="With --stem: distribute the residual z_MIX - sum of the estimates equally over "
    "them, so that the stems' latents sum to the mixture's.",
)
@store_out_option
@click.option(
    "--length",
    type=click.Choice(["shortest", "longest", "first"]),
    default="first",
    show_default=True,
    help="Output length when paired tracks differ.",
)
@missing_option
@origin_option
@require_complete_option
@jobs_option
@scheduler_option
@force_option
@overwrite_option
@json_option
def extract_cmd(
    mix: str,
    minus: tuple[str, ...],
    stem: tuple[str, ...],
    consistent: bool,
    out: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Write a new store with z <- z_MIX - sum z_MINUS (the paper's Fig. 3).

    With --stem NAME=STORE (repeated) instead, write one store per stem into the directory OUT
    (default beside MIX: MIX.stems, or MIX.consistent): each stem is z_MIX minus the other stems
    (the paper's protocol), or with --consistent z_i + (z_MIX - sum z_j)/n, estimates that sum to
    z_MIX. Prints the stems' stores, one a line.
    """
    if bool(minus) == bool(stem):
        raise click.UsageError(
            "give either --minus STORE (one estimate) or --stem NAME=STORE "
            "(every stem), not both and not neither"
        )
    if consistent and not stem:
        raise click.UsageError(
            "--consistent needs --stem: a --minus estimate and the stores it "
            "subtracts already sum to the mixture"
        )
    warnings = operation_warnings([mix], "extract")
    with frame_progress("extract") as progress:
        if minus:
            summary = extract_store(mix, list(minus), out, progress=progress, **options)
        else:
            summary = extract_stems(
                mix, _stems(stem), out, consistent=consistent, progress=progress, **options
            )
    echo_warnings(warnings)
    if minus:
        echo_result(summary, as_json)
    else:
        _echo_stems(summary, as_json)


def _echo_stems(summary: dict[str, Any], as_json: bool) -> None:
    """The stems' stores on stdout, one a line (``--json``: the whole record); exit 3 when tracks
    of an input were left out, as every latent operation."""
    for name, record in summary["stems"].items():
        if not as_json:
            click.echo(record["out"])
        click.echo(
            f"extract: wrote {record['out']} (stem {name}, {record['tracks']} tracks, "
            f"{record['frames']} frames)",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(summary))
    for path, n in (summary.get("left_out") or {}).items():
        click.echo(
            f"extract: left out {n['planned']} planned and {n['failed']} failed tracks of "
            f"{path} (finish its encode, or see: lincae ls --status failed {path})",
            err=True,
        )
    if summary.get("left_out"):
        raise click.exceptions.Exit(EXIT_PARTIAL)
