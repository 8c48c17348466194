"""Shared click options and parameter types."""

from __future__ import annotations

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout."
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output instead of refusing."
)
force_option = click.option(
    "--force", is_flag=True, help="Combine stores even if their models/geometries differ."
)
jobs_option = click.option(
    "-j", "--jobs", type=int, default=1, show_default=True,
    help="Parallel workers (joblib); -1 uses every core.",
)
checkpoint_option = click.option(
    "-c", "--checkpoint", type=click.Path(), default=None,
    help="Checkpoint directory (default: the model embedded in the package).",
)
