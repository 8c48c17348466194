"""``lincae encode LIBRARY OUT.zarr``: encode an audio library into a latent store."""

from __future__ import annotations

import json
from typing import Any

import click

from lincae_cli.options import (
    EXIT_PARTIAL,
    BatchSizeType,
    ShardType,
    checkpoint_option,
    checksums_option,
    device_option,
    json_option,
    out_option,
    overwrite_option,
    pick_out,
)
from lincae_cli.progress import EncodeBar, note
from lincae_core import (
    AUTOCAST_CHOICES,
    EncodeSettings,
    InferenceConfig,
    discover,
    parse_extensions,
    read_file_list,
)
from lincae_core.errors import ConfigError
from lincae_core.location import as_location

_DEF = InferenceConfig()


@click.command("encode")
@click.argument("library", type=click.Path())
@click.argument("out_arg", metavar="OUT", required=False, type=click.Path())
@out_option("Latent store to write (or give it as the second argument).")
@click.option(
    "--files-from",
    type=click.File("r"),
    default=None,
    help="Encode the paths listed in FILE ('-': stdin), one per line, relative to LIBRARY.",
)
@click.option(
    "--ext", default=None, help="Comma-separated extensions to find (default: every soundfile format)."
)
@click.option(
    "--match",
    default=None,
    metavar="GLOB",
    help="Encode only the files whose path relative to LIBRARY matches GLOB, e.g. '*/vocals.wav'.",
)
@click.option(
    "--key",
    "key_template",
    default=None,
    metavar="TEMPLATE",
    help="Track keys from the file's path: fields {rel} (the default: the path without extension), "
    "{parent} (its folder), {name}, {ext}. MUSDB layout (song/vocals.wav): --match '*/vocals.wav' "
    "--key '{parent}' keys each stem store by song, so mix/extract pair them.",
)
@click.option(
    "--channels",
    type=click.Choice(["mono", "stereo"]),
    default="mono",
    show_default=True,
    help="Store channels: mono folds every file to one channel; stereo keeps two (mono files doubled).",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="Stored latent precision (float16 halves the store; docs/store-format.md measures the error).",
)
@click.option(
    "--chunk-frames",
    type=click.IntRange(1),
    default=None,
    help="Latent frames per stored object of a new store [default: 16384, 2 MiB for 64-dim "
    "mono float16]; see docs/store-format.md.",
)
@click.option(
    "--chunks-per-object",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Zarr v3 sharding: split each stored object into this many chunks, which readers fetch "
    "with range requests (fewer, larger objects in a bucket; docs/store-format.md, 'Object storage').",
)
@checksums_option
@click.option(
    "--window",
    "window_s",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEF.window_s,
    show_default=True,
    help="Encoding window in seconds.",
)
@click.option(
    "--overlap",
    "overlap_s",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Window overlap (latent cross-fade) in seconds [default: {_DEF.overlap_s}, at most "
    "half the window].",
)
@click.option(
    "--batch-size",
    type=BatchSizeType(),
    default="auto",
    show_default=True,
    help="Windows per forward pass (across tracks); auto: chosen for the device and the "
    "library's window length (logged, recorded in the store).",
)
@click.option(
    "-j",
    "--jobs",
    "--workers",
    "workers",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Audio reader threads (-j/--jobs as on every command; --workers is the same option).",
)
@device_option
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="Channels-last encoder [default: on for CPU (~1.5-2x faster, latents within float16 "
    "precision of inference.encode), off for CUDA].",
)
@click.option(
    "--autocast",
    type=click.Choice(AUTOCAST_CHOICES),
    default="none",
    show_default=True,
    help="bf16: bfloat16 autocast on CPU (faster on CPUs with bf16 units; latents NOT within "
    "float16 precision, see docs/encoding.md).",
)
@click.option("--compile", "compile_", is_flag=True, help="Run the encoder through torch.compile.")
@click.option(
    "--parallel-forward/--no-parallel-forward",
    default=None,
    help="One encoder pass per core at once, each on one thread [default: on for CPU with "
    "channels-last (~1.5x the throughput of small passes), off otherwise].",
)
@click.option(
    "--shard",
    type=ShardType(),
    default="0/1",
    show_default=True,
    help="Fill shard i of N (0-based), or auto: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT "
    "or RANK/WORLD_SIZE; the store is planned once.",
)
@click.option("--plan-only", is_flag=True, help="Plan the store (for --shard */N) and stop.")
@click.option("--dry-run", is_flag=True, help="Print the plan (files, hours, store size); write nothing.")
@checkpoint_option
@overwrite_option
@json_option
@click.pass_context
def encode_cmd(
    ctx: click.Context,
    library: str,
    out_arg: str | None,
    out: str | None,
    files_from: Any,
    ext: str | None,
    match: str | None,
    key_template: str | None,
    channels: str,
    dtype: str,
    chunk_frames: int | None,
    chunks_per_object: int,
    checksums: bool | None,
    window_s: float,
    overlap_s: float | None,
    batch_size: int | str,
    workers: int,
    device: str,
    channels_last: bool | None,
    autocast: str,
    compile_: bool,
    parallel_forward: bool | None,
    shard: tuple[int, int],
    plan_only: bool,
    dry_run: bool,
    checkpoint: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Encode the audio files under LIBRARY into the latent store OUT (resumable, shardable).

    OUT is the second argument or -o/--out; its path is printed on stdout. Audio is resampled to
    the model's rate (16000 Hz for the embedded default) and folded to mono unless --channels
    stereo; the source rate and channel count are kept as metadata.

    Exit status: 0 when every input is encoded, 3 when some failed (they are in the store's
    failure ledger), 1 on errors, 2 on usage errors. Re-running a finished encode does nothing.
    """
    out = pick_out(("OUT", out_arg), ("-o/--out", out), required="give OUT or -o/--out")
    try:
        exts = parse_extensions(ext)
        inference = InferenceConfig.for_window(window_s, overlap_s, batch_size=batch_size)
        settings = EncodeSettings(
            channels=channels,
            dtype=dtype,
            workers=workers,
            shard=shard[0],
            shards=shard[1],
            overwrite=overwrite,
            plan_only=plan_only,
            channels_last=channels_last,
            autocast=autocast,
            compile=compile_,
            parallel_forward=parallel_forward,
            chunk_frames=chunk_frames,
            chunks_per_object=chunks_per_object,
            checksums=checksums,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    files = read_file_list(files_from) if files_from is not None else None
    try:
        sources = discover(library, exts, files, match=match, key=key_template)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="LIBRARY") from exc
    except ConfigError as exc:  # the --key template: a command-line value, so a usage error
        raise click.BadParameter(str(exc), param_hint="--key") from exc
    # torch (and scipy, for the loudness meter) only now: --help and completion stay instant
    from lincae_core import encode_args, encode_files, load_model, plan_encode
    from lincae_core.encoding.grow import planned_update

    model = load_model(checkpoint, device)
    bar = EncodeBar()
    if dry_run:
        plan = plan_encode(sources, model, workers, bar)
        bar.close()
        update = None if overwrite else planned_update(as_location(str(out)), sources)
        d = plan.to_dict(settings.latent_channels, model.config.latent_dim, dtype)
        _echo_dry_run({**d, **({"update": update} if update else {})}, out, as_json)
        return
    args = encode_args(library, getattr(files_from, "name", None), exts, checkpoint, inference, settings)
    args.update({k: v for k, v in (("match", match), ("key", key_template)) if v is not None})
    summary = encode_files(sources, out, model, inference, settings, args, bar)
    bar.close()
    _echo_summary(summary.to_dict(), as_json)
    if summary.partial:
        ctx.exit(EXIT_PARTIAL)


def _echo_dry_run(d: dict[str, Any], out: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**d, "out": out, "dry_run": True}))
        return
    if d.get("update"):
        note(_update_line(out, d["update"]).replace("updated", "would update", 1))
    click.echo(
        f"dry run: {d['files']} files, {d['planned']} to encode ({d['hours']:.3f} h of audio), "
        f"{d['failed']} unreadable; store {out} would hold about {d['store_bytes'] / 1e6:.1f} MB. "
        "Nothing written."
    )


def _update_line(store: str, u: dict[str, Any]) -> str:
    """What a re-run found changed in the library (lincae_core.encoding.grow)."""

    def some(n: int, keys: list[str]) -> str:
        shown = ", ".join(keys[:5]) + (", ..." if n > 5 else "")
        return f" ({shown})" if n else ""

    return (
        f"updated {store}: {u['added']} new inputs{some(u['added'], u['added_keys'])}, "
        f"{u['changed']} changed{some(u['changed'], u['changed_keys'])} (encoded now); "
        f"{u['gone_kept']} finished tracks kept whose inputs are gone{some(u['gone_kept'], u['gone_keys'])}; "
        "the other finished tracks were kept as they are."
    )


def _echo_summary(d: dict[str, Any], as_json: bool) -> None:
    """The store path alone on stdout (``--json``: the record); what happened on stderr."""
    click.echo(json.dumps(d) if as_json else d["store"])
    where = f"{d['store']}" + (f" (shard {d['shard']}/{d['shards']})" if d["shards"] > 1 else "")
    failed = f"; {d['failed_total']} failed" if d["failed_total"] else ""
    planfail = f"; {d['plan_failures']} inputs unreadable" if d["plan_failures"] else ""
    if d["tracks"] == 0:
        msg = f"planned {where}: no readable audio among the inputs{planfail}."
    elif d["nothing_to_do"]:
        msg = f"nothing to do: {where} is already encoded ({d['skipped']} tracks finished{failed}{planfail})."
    elif d["encoded"] or d["failed"]:
        msg = (
            f"encoded {d['encoded']} tracks ({d['audio_seconds'] / 3600:.3f} h) into {where} in "
            f"{d['wall_seconds']:.1f} s ({d['realtime']:.1f}x real time, batch size {d['batch_size']})"
            f"{failed}{planfail}."
        )
    else:
        msg = f"planned {where}: {d['tracks']} tracks{planfail}."
    if d.get("update"):
        note(_update_line(d["store"], d["update"]))
    note(msg)
    if d["failed_total"] or d["plan_failures"]:
        note(f"the reasons: lincae ls --status failed {d['store']}")
    if d["pending_elsewhere"]:
        note(f"{d['pending_elsewhere']} tracks are still to be encoded by other shards.")
