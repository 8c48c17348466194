"""``lincae extract MIX --minus ACC [--minus ...] [-o OUT]``: latent-arithmetic separation;
``lincae extract MIX --stem NAME=STORE ... [--consistent] [-o OUTDIR]``: every stem at once."""

from __future__ import annotations

from dataclasses import replace

import click

from lincae_cli.commands._ops_common import echo_result, echo_warnings
from lincae_cli.options import force_option, missing_option, op_options, store_out_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import OpOptions, operation_warnings


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
@force_option
@op_options(origin=True)
def extract_cmd(
    mix: str,
    minus: tuple[str, ...],
    stem: tuple[str, ...],
    consistent: bool,
    out: str | None,
    length: str,
    missing: str,
    force: bool,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new store with z <- z_MIX - sum z_MINUS (the paper's Fig. 3).

    With --stem NAME=STORE (repeated) instead, write one store per stem into the directory OUT
    (default beside MIX: MIX.stems, or MIX.consistent): each stem is z_MIX minus the other stems
    (the paper's protocol), or with --consistent z_i + (z_MIX - sum z_j)/n, estimates that sum to
    z_MIX. Prints the stems' stores, one a line.
    """
    from lincae_core.ops import extract_stems, extract_store  # torch only when the command runs

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
        run = replace(options, progress=progress)
        if minus:
            result = extract_store(
                mix, list(minus), out, length=length, missing=missing, force=force, options=run
            )
        else:
            stems = extract_stems(
                mix,
                _stems(stem),
                out,
                consistent=consistent,
                length=length,
                missing=missing,
                force=force,
                options=run,
            )
    echo_warnings(warnings)
    if minus:
        echo_result(result, as_json)
    else:
        echo_result(
            stems,
            as_json,
            paths=[r.out for r in stems.stems.values()],
            notes=[
                f"wrote {r.out} (stem {name}, {r.tracks} tracks, {r.frames} frames)"
                for name, r in stems.stems.items()
            ],
        )
