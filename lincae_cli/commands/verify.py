"""``lincae verify STORE [--repair]``: find missing, truncated and (with checksums) corrupt latent
chunks of done tracks."""

from __future__ import annotations

import json

import click

from lincae_cli.options import EXIT_PARTIAL, json_option


@click.command("verify")
@click.argument("store", type=click.Path())
@click.option(
    "--repair",
    is_flag=True,
    help="Mark the tracks of damaged chunks planned, so that re-running the encode that made the "
    "store re-encodes exactly them.",
)
@json_option
def verify_cmd(store: str, repair: bool, as_json: bool) -> None:
    """Check that every latent chunk of STORE's done tracks exists with its full size and, in a
    store encoded with --checksums, that its CRC32C matches (every such chunk is read).

    A partial copy or an interrupted sync leaves chunks missing or cut short, a bad disk or copy
    flips bits; reads of such a chunk stop with one line, and this lists them all with the tracks
    they hold. Exit 0: intact; 3: damage found (repaired with --repair: then re-run the encode
    that made the store).
    """
    from lincae_core.store import LatentStore
    from lincae_core.store.damage import verify_store

    s = LatentStore.open(store, "r+" if repair else "r")
    report = verify_store(s, repair=repair)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    for d in report.damaged:
        shown = ", ".join(d.tracks[:5]) + (f" and {len(d.tracks) - 5} more" if len(d.tracks) > 5 else "")
        click.echo(
            f"verify: {store}: chunk {d.chunk} {d.problem}; {len(d.tracks)} done tracks ({shown})", err=True
        )
    if report.checksums:
        sums = f"{report.checksums_checked - report.checksum_mismatches} of {report.checksums_checked}"
        click.echo(f"verify: {store}: {report.checksums} checksums: {sums} chunks match", err=True)
    else:
        click.echo(f"verify: {store}: no checksums (encode with --checksums to add them)", err=True)
    if not report.damaged:
        click.echo(f"verify: {store}: {report.chunks_checked} chunks of done tracks, all intact", err=True)
        return
    if repair:
        click.echo(
            f"verify: marked {len(report.repaired_tracks)} tracks planned; re-run the encode that made "
            f"{store} to re-encode them",
            err=True,
        )
    else:
        click.echo(f"verify: run 'lincae verify {store} --repair', then the encode again", err=True)
    raise click.exceptions.Exit(EXIT_PARTIAL)
