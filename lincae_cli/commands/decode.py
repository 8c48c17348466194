"""``lincae decode STORE OUTDIR`` / ``lincae decode STORE --key K -o -``: latents to audio."""

from __future__ import annotations

import json
import sys

import click

from lincae_cli.options import (
    EXIT_PARTIAL,
    checkpoint_option,
    device_option,
    force_option,
    json_option,
    out_option,
    overwrite_option,
    pick_out,
    scheduler_option,
)
from lincae_cli.progress import count_progress, note
from lincae_core import InferenceConfig


@click.command("decode")
@click.argument("store", type=click.Path())
@click.argument("outdir", required=False, type=click.Path(file_okay=False))
@click.option("-k", "--key", "keys", multiple=True, help="Track key to decode (repeatable; default all).")
@out_option(
    "Output folder (or give it as the second argument); '-' writes one track as WAV to stdout.",
    file_okay=False,
    old="--output",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["wav", "flac"]),
    default="wav",
    show_default=True,
    help="Audio file format of the decoded tracks.",
)
@click.option("--subtype", default=None, help="Sample format, e.g. PCM_16 (default), PCM_24, FLOAT.")
@click.option("--seed", type=int, default=0, show_default=True, help="Decode noise seed.")
@click.option(
    "--steps",
    type=click.IntRange(1, 64),
    default=None,
    help="Consistency decoding steps [default: the model card's recommended_steps, else 1].",
)
@click.option(
    "--sample-rate",
    "sample_rate",
    default="model",
    show_default=True,
    help="Rate of the files: model (the model's rate, 16000 Hz for the default model), "
    "source (each track's recorded source rate, resampled with soxr) or a rate in Hz.",
)
@click.option("--window", "window_s", type=float, default=None, help="Decode window in seconds.")
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=None,
    help="Windows (x channels) per forward pass, across tracks [default: about 8 s of audio a pass "
    "on CPU]; the audio is the same whatever the size.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Forward passes at once, each on one thread (0: one per core on CPU, 1 on a GPU); "
    "the audio is byte-identical whatever the number.",
)
@scheduler_option
@checkpoint_option
@device_option
@force_option
@overwrite_option
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the files an interrupted decode into OUTDIR finished (checked: format, rate, "
    "channels, length) and decode the rest.",
)
@json_option
def decode_cmd(
    store: str,
    outdir: str | None,
    keys: tuple[str, ...],
    out: str | None,
    out_alias: str | None,
    fmt: str,
    subtype: str | None,
    seed: int,
    steps: int | None,
    sample_rate: str,
    window_s: float | None,
    batch_size: int | None,
    jobs: int,
    scheduler: str | None,
    checkpoint: str | None,
    device: str,
    force: bool,
    overwrite: bool,
    resume: bool,
    as_json: bool,
) -> None:
    """Decode tracks of STORE into OUTDIR/<key>.<format> (paths mirror the keys).

    Files have the store's channel count (mono unless it was encoded with --channels stereo) at
    the model's sample rate (16000 Hz for the embedded default), each trimmed to its original
    length; --sample-rate source restores each track's source rate. Without -c a store encoded
    with a released model's name (-c lin-cae) is decoded by that model. Existing files are refused
    unless --overwrite. Integer subtypes are hard-clipped to [-1, 1]; clipped sample counts are
    reported on stderr. Prints the written files, one per line (--json: the record).
    """
    from lincae_core import (
        decode_store,
        decode_to_wav_stream,
        load_model,
        recorded_model,
    )  # torch only when the command runs

    if sample_rate not in ("model", "source") and not sample_rate.isdigit():
        raise click.BadParameter(
            f"expected model, source or a rate in Hz, got {sample_rate!r}", param_hint="--sample-rate"
        )
    output = pick_out(
        ("OUTDIR", outdir),
        ("-o/--out", out),
        ("--output", out_alias),
        required="give OUTDIR, or -o - with one --key for stdout",
    )
    inference = InferenceConfig.for_window(window_s, batch_size=batch_size or "auto")
    if output == "-" and len(keys) != 1:
        raise click.UsageError("-o - writes exactly one track: give one --key.")
    if output == "-" and sys.stdout.isatty():
        raise click.UsageError(
            "-o - writes binary audio to stdout, which is a terminal here: redirect it "
            "(-o - > song.wav) or pipe it (-o - | sox -t wav - song.flac), or give an OUTDIR."
        )
    # without -c: the released model the store names (encode -c lin-cae), when it is cached
    model = load_model(checkpoint if checkpoint is not None else recorded_model(store), device)
    if output == "-":
        clipped = decode_to_wav_stream(
            store,
            keys[0],
            sys.stdout.buffer,
            model,
            subtype or "PCM_16",
            seed,
            steps,
            inference,
            force,
            sample_rate,
            jobs=jobs or None,
            fmt=fmt,
        )
        if clipped:
            click.echo(f"warning: {clipped} samples clipped to [-1, 1]", err=True)
        return
    assert output is not None, "pick_out raised"
    outdir = output
    with count_progress(len(keys)) as progress:
        summary = decode_store(
            store,
            outdir,
            model,
            keys or None,
            fmt,
            subtype,
            seed,
            steps,
            inference,
            force,
            progress=progress,
            sample_rate=sample_rate,
            overwrite=overwrite,
            jobs=jobs or None,
            scheduler=scheduler,
            resume=resume,
        )
    if as_json:
        record = {"files": summary.files, "seconds": summary.seconds, "clipped": summary.clipped}
        click.echo(json.dumps({**record, "resumed": summary.resumed, "left_out": summary.left_out}))
    else:
        for f in summary.files:
            click.echo(f)
        note(
            f"decoded {len(summary.files)} tracks ({summary.seconds:.1f} s of audio) into {outdir}"
            + (f", kept {len(summary.resumed)} finished before (--resume)" if summary.resumed else "")
            + (f"; {len(summary.clipped)} tracks had clipped samples" if summary.clipped else "")
        )
    if summary.left_out:
        n = summary.left_out
        click.echo(
            f"decode: left out {n.get('planned', 0)} planned and {n.get('failed', 0)} failed tracks of "
            f"{store} (finish its encode, or see: lincae ls --status failed {store})",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_PARTIAL)
