"""Command-line interface of lincae (thin: parse, call lincae_core, echo)."""
