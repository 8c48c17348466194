"""The version of lincae: the one definition (``pyproject.toml`` reads it, ``lincae_core`` re-exports
it), in a module that imports nothing, so that any module can import it at the top."""

__version__ = "0.1.0"
