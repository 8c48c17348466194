"""``python -m lincae_cli``: the ``lincae`` command."""

from lincae_cli.main import cli

if __name__ == "__main__":
    cli(prog_name="lincae")
