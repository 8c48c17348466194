"""``lincae models``: the models ``-c`` takes here; ``--fetch NAME`` downloads and converts one."""

from __future__ import annotations

import json

import click

from lincae_cli.options import json_option


def _measured(m: object) -> str:
    """A few figures of the measured card summary (``lincae info`` has all of it)."""
    if not isinstance(m, dict):
        return str(m).split(" (")[0]
    steps = m.get("recommended_steps") or 1
    mss = (m.get("recon_mss_by_steps") or {}).get(str(steps))
    return (
        f"recon MSS {mss} ({steps} steps), Enc-Hom err {m.get('enc_hom_err')}, "
        f"Add Enc err {m.get('add_enc_err')}, separation SI-SDR {m.get('separation_si_sdr_mean')} dB"
    )


@click.command("models")
@click.option(
    "--fetch",
    "fetch",
    metavar="NAME",
    default=None,
    help="Download (or find in the hub cache), convert and cache NAME (lin-cae, lin-cae-2, m2l or "
    "hf:REPO[@REVISION]/PATH); print its checkpoint directory.",
)
@click.option("--refresh", is_flag=True, help="With --fetch: ask the hub for the revision's commit again.")
@json_option
def models_cmd(fetch: str | None, refresh: bool, as_json: bool) -> None:
    """List the models -c takes: the embedded default, the shipped baseline, the released names and
    lincae's cached checkpoints, with sample rate, channels, parameters, whether each is usable
    offline and its measured card summary (--json: one record a line).

    A released name is downloaded and converted on first use by any command (or by --fetch) and
    works offline from then on; `lincae info lin-cae` describes it.
    """
    from lincae_core import list_models, resolve_checkpoint  # torch only when the command runs

    if fetch is not None:
        path = resolve_checkpoint(fetch, refresh=refresh)
        click.echo(json.dumps({"name": fetch, "path": str(path)}) if as_json else str(path))
        return
    rows = list_models()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    click.echo(f"{'name':14s} {'kind':9s} {'rate':>6s} ch {'params':>8s} offline state; measured")
    for r in rows:
        params, offline = f"{r['parameters'] / 1e6:.2f}M", "yes" if r["offline"] else "no"
        detail = r["state"] if r["measured"] is None else f"{r['state']}; {_measured(r['measured'])}"
        cols = f"{r['name']:14s} {r['kind']:9s} {r['sample_rate']:6d} {r['channels']:2d} {params:>8s}"
        click.echo(f"{cols} {offline:7s} {detail}")
