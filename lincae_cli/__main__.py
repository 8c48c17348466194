"""Run the CLI with ``python -m lincae_cli``."""

from lincae_cli.main import cli

cli()
