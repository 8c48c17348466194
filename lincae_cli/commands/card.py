"""``lincae card CKPT --stems DIR [--music DIR]``: measure a checkpoint into its model card."""

from __future__ import annotations

import json

import click

from lincae_cli.commands.evaluate import JOBS_HELP
from lincae_cli.options import device_option, json_option
from lincae_cli.progress import labelled_progress


@click.command("card")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--stems",
    "stems_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="MUSDB18-HQ-style folder: <track>/{bass,drums,other,vocals}.wav.",
)
@click.option(
    "--music",
    "music_dir",
    type=click.Path(exists=True),
    help="Music for reconstruction, homogeneity and Enc(0) (default: the stems' mixtures).",
)
@click.option("--max-tracks", type=int, default=4, show_default=True, help="Tracks used from each folder.")
@click.option("--max-seconds", type=float, default=10.0, show_default=True, help="Seconds used per track.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the decode noise.")
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default=True, help=JOBS_HELP)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    help="Write a copy of the checkpoint with the measured card here (the only way for 'default': "
    "lincae never writes into its installed package).",
)
@click.option("--overwrite", is_flag=True, help="Replace a card's measurements (or an existing -o folder).")
@device_option
@json_option
def card_cmd(
    checkpoint: str,
    stems_dir: str,
    music_dir: str | None,
    max_tracks: int,
    max_seconds: float,
    seed: int,
    jobs: int,
    out: str | None,
    overwrite: bool,
    device: str,
    as_json: bool,
) -> None:
    """Measure CHECKPOINT ('default': the embedded model) and write the results into its model card.

    A short `lincae eval`: reconstruction at 1-4 decoding steps (and the recommended count),
    homogeneity and additivity, separation SI-SDR and the encoder's origin Enc(0). Only
    model_card.json changes; the weights and the model id stay as they are. A card that holds
    measurements is replaced only with --overwrite (its recommended_steps drive every later
    decode); -o DIR writes a measured copy instead.
    """
    from lincae_core import measure_checkpoint  # torch only when the command runs

    with labelled_progress() as progress:
        result = measure_checkpoint(
            checkpoint,
            stems_dir,
            music_dir,
            max_tracks=max_tracks,
            max_seconds=max_seconds,
            seed=seed,
            device=device,
            progress=progress,
            jobs=jobs or None,
            out=out,
            overwrite=overwrite,
        )
    if as_json:
        click.echo(json.dumps(result))
        return
    m = result["measured"]
    lin = m["linearity"]
    click.echo(f"card: {result['card']} (model id {result['model_id'][:12]}, unchanged)")
    click.echo(f"measured on {len(m['data']['stem_tracks'])} tracks x {m['data']['max_seconds']:g} s")
    steps = ", ".join(f"{r['steps']}: {r['mss']:.2f}" for r in m["reconstruction"])
    click.echo(f"recon MSS by steps: {steps}; recommended_steps {m['recommended_steps']}")
    click.echo(
        f"homogeneity: Enc err {lin['enc_hom_err']:.2f}, Dec MSS {lin['dec_hom_mss']:.2f}, "
        f"Dec SNR {lin['dec_hom_snr']:.1f} dB"
    )
    click.echo(
        f"additivity: Enc err {lin['add_enc_err']:.2f}, Dec MSS {lin['add_dec_mss']:.2f}, "
        f"Dec SNR {lin['add_dec_snr']:.1f} dB"
    )
    sep = ", ".join(f"{k} {v:.1f}" for k, v in m["separation"]["si_sdr"].items())
    click.echo(f"separation SI-SDR (dB): {sep}")
    click.echo(f"origin: |Enc(0)| / |Enc(music)| = {m['origin']['ratio']:.2f}")
