"""One module per command; registered explicitly in lincae_cli.main."""
