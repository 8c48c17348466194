"""``lincae export STORE 'shards/%06d.tar' --window 10 --hop 5``: WebDataset latent shards."""

from __future__ import annotations

import json
from typing import IO

import click

from lincae_cli.commands._ops_common import echo_warnings, read_keys
from lincae_cli.options import (
    EXIT_PARTIAL,
    jobs_option,
    json_option,
    keys_from_option,
    out_option,
    overwrite_option,
    pick_out,
    scheduler_option,
)
from lincae_cli.progress import frame_progress
from lincae_core.ops import export_shards

MOSTLY_PADDING = 0.5  # above this fraction of padded frames an export is not called whole (exit 3)


@click.command("export")
@click.argument("store", type=click.Path())
@click.argument("pattern_arg", metavar="PATTERN", required=False)
@out_option("Shard path pattern with a %-field, e.g. 'shards/%06d.tar' (or the second argument).")
@click.option("--window", "window_s", type=float, required=True, help="Window length (s).")
@click.option("--hop", "hop_s", type=float, default=None, help="Hop (s); default: --window.")
@click.option(
    "--maxcount", type=click.IntRange(min=1), default=10000, show_default=True, help="Samples per shard."
)
@keys_from_option
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default=None,
    help="Dtype of the .npy latents (default: the store's).",
)
@click.option(
    "--normalize",
    is_flag=True,
    help="Write (z - mean) / std with the store's statistics (run 'lincae stats' first); "
    "recorded in every sample's JSON.",
)
@click.option(
    "--metadata",
    type=click.Path(dir_okay=False),
    default=None,
    help='JSON Lines file, one object per track with its "key": the other fields go '
    "into that track's windows' JSON (e.g. prompts for stable-audio-tools).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["wds", "sat-wds", "sat-dir"]),
    default="wds",
    show_default=True,
    help="wds: members .latent.npy + .json; sat-wds: members .npy + .json (stable-audio-tools' "
    "pre-encoded WebDataset loader); sat-dir: PATTERN is a directory of .npy + .json files with "
    "filelist.txt (its PreEncodedDataset). sat-*: also details.json and silence.npy (Enc(0)).",
)
@click.option(
    "--no-pad",
    is_flag=True,
    help="Variable-length items: a track's last window holds only its real frames (no padding).",
)
@jobs_option
@scheduler_option
@overwrite_option
@json_option
def export_cmd(
    store: str,
    pattern_arg: str | None,
    out: str | None,
    window_s: float,
    hop_s: float | None,
    maxcount: int,
    keys_from: IO[str] | None,
    dtype: str | None,
    normalize: bool,
    metadata: str | None,
    fmt: str,
    no_pad: bool,
    jobs: int,
    scheduler: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write windows of STORE's tracks as .npy [C*D, T] + .json WebDataset shards at PATTERN.

    Shard i holds windows [i*maxcount, (i+1)*maxcount) of the done tracks (row order, or the
    --keys-from order), so the shards are byte-identical whatever --jobs or --scheduler. Every
    JSON records downsampling_ratio (audio samples per latent frame). On an error, shards
    already complete stay and no .partial file does. --format sat-wds / sat-dir write what
    stable-audio-tools' pre-encoded loaders read (docs/loading.md). See docs/store-format.md,
    "Export".
    """
    pattern = pick_out(("PATTERN", pattern_arg), ("-o/--out", out), required="give PATTERN or -o/--out")
    assert pattern is not None, "pick_out raised"
    with frame_progress("export", unit="track") as progress:
        result = export_shards(
            store,
            pattern,
            window_s,
            hop_s,
            maxcount,
            read_keys(keys_from),
            dtype=dtype,
            overwrite=overwrite,
            normalize=normalize,
            metadata=metadata,
            jobs=jobs,
            scheduler=scheduler,
            progress=progress,
            format=fmt,
            pad=not no_pad,
        )
    md = result.metadata
    if md and md["tracks_without"]:
        echo_warnings(
            [
                f"export: {md['tracks_without']} of {result.tracks} tracks have no entry in "
                f"{metadata} (their windows get no extra fields)"
            ]
        )
    if md and md["unused"]:
        echo_warnings([f"export: {md['unused']} entries of {metadata} name no exported track"])
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        where = result.shards[0] if fmt == "sat-dir" else f"{len(result.shards)} shards"
        click.echo(f"export: wrote {result.samples} windows of {result.window_frames} frames to {where}")
    partial = False
    for path, n in result.left_out.items():
        click.echo(
            f"export: left out {n['planned']} planned and {n['failed']} failed tracks of {path} "
            f"(finish its encode, or see: lincae ls --status failed {path})",
            err=True,
        )
        partial = True
    if result.samples == 0:
        click.echo(f"export: no window written: {store} has no done track to export", err=True)
        partial = True
    elif result.padding > MOSTLY_PADDING:
        click.echo(
            f"export: {result.padding:.0%} of the exported frames are padding (windows longer than "
            f"most tracks): choose a shorter --window, or --no-pad for variable-length items",
            err=True,
        )
        partial = True
    if partial:
        raise click.exceptions.Exit(EXIT_PARTIAL)
