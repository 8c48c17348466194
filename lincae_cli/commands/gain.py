"""``lincae gain STORE [-o OUT] --gain A | --db DB | --to-lufs L [--fade-in S] [--fade-out S]
[--envelope FILE]``: scale every latent (homogeneity), per track or per frame."""

from __future__ import annotations

from dataclasses import replace

import click

from lincae_cli.commands._ops_common import echo_result, echo_warnings
from lincae_cli.options import missing_option, op_options, store_out_option
from lincae_cli.progress import frame_progress
from lincae_core.ops import OpOptions, db_to_amplitude, operation_warnings


@click.command("gain")
@click.argument("store", type=click.Path())
@store_out_option
@click.option("--gain", "amplitude", type=float, default=None, help="Amplitude factor, e.g. 0.5.")
@click.option("--db", type=float, default=None, help="Gain in decibels, e.g. -6.")
@click.option(
    "--to-lufs",
    type=float,
    default=None,
    help="Normalize every track to this integrated loudness (LUFS), from the loudness "
    "measured at encode time, e.g. -14.",
)
@click.option(
    "--fade-in",
    "fade_in",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Linear fade-in over the first S seconds of every track.",
)
@click.option(
    "--fade-out",
    "fade_out",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Linear fade-out over the last S seconds of every track.",
)
@click.option(
    "--envelope",
    type=click.Path(dir_okay=False),
    default=None,
    help="Gain curve file: rows 'time_s,gain' (or a 'time_s,db' header for decibels), "
    "interpolated linearly onto the latent frames; see docs/editing.md.",
)
@click.option(
    "--max-gain",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --to-lufs: no track is raised by more than this amplitude factor (quiet tracks stay "
    "quieter than the target instead of leaving the model's trained gain range); counted.",
)
@missing_option
@op_options(origin=True)
def gain_cmd(
    store: str,
    out: str | None,
    amplitude: float | None,
    db: float | None,
    to_lufs: float | None,
    fade_in: float,
    fade_out: float,
    envelope: str | None,
    max_gain: float | None,
    missing: str,
    options: OpOptions,
    as_json: bool,
) -> None:
    """Write a new store with every latent of STORE scaled: z <- a z (per frame: a(t) z).

    --to-lufs refuses tracks without a loudness measurement unless --missing skip. Fades and
    envelopes act per latent frame (an extrapolation of the model's training: see
    docs/editing.md for where they hold).
    """
    from lincae_core.ops import gain_store  # torch only when the command runs

    levels = [n for n, v in (("--gain", amplitude), ("--db", db), ("--to-lufs", to_lufs)) if v is not None]
    if len(levels) > 1:
        raise click.UsageError(f"give at most one of --gain, --db or --to-lufs (got {', '.join(levels)})")
    if not levels and not (fade_in or fade_out or envelope):
        raise click.UsageError(
            "give exactly one of --gain or --db (or --to-lufs, --fade-in, --fade-out, --envelope)"
        )
    if max_gain is not None and to_lufs is None:
        raise click.UsageError("--max-gain caps the gains of --to-lufs: give --to-lufs too")
    a = db_to_amplitude(db) if db is not None else 1.0 if amplitude is None else amplitude
    with frame_progress("gain") as progress:
        result = gain_store(
            store,
            out,
            a,
            fade_in_s=fade_in,
            fade_out_s=fade_out,
            envelope=envelope,
            to_lufs=to_lufs,
            missing=missing,
            max_gain=max_gain,
            options=replace(options, progress=progress),
        )
    ext = result.info.get("gain_extremes")
    gains = [a] if ext is None else [ext["min"]["gain"], ext["max"]["gain"]]
    warnings = operation_warnings([store], "gain", gains)
    if ext is not None and (to_lufs is not None or envelope) and warnings and "outside" in warnings[-1]:
        # per-track and per-frame gains: name the tracks that went furthest
        warnings[-1] += (
            f" The largest gain is {ext['max']['gain']:.3g}x ({ext['max']['key']!r}), the smallest "
            f"{ext['min']['gain']:.3g}x ({ext['min']['key']!r})"
            + ("; --max-gain caps the loudness gains." if to_lufs is not None else ".")
        )
    if result.info.get("capped"):
        warnings.append(
            f"gain: --max-gain {max_gain:g} held {result.info['capped']} tracks below {to_lufs:g} LUFS."
        )
    echo_warnings(warnings)
    echo_result(result, as_json)
