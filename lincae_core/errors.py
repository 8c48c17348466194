"""Typed errors of lincae: the library raises these, the CLI turns them into one-line messages."""

from __future__ import annotations

__all__ = [
    "AudioError",
    "CheckpointError",
    "ConfigError",
    "InvalidAudioError",
    "LincaeError",
    "OutputExistsError",
    "ShapeMismatchError",
    "StoreFormatError",
    "StoreMismatchError",
    "StoreReplacedError",
]


class LincaeError(Exception):
    """Base class of every error lincae raises on purpose."""


class ConfigError(LincaeError, ValueError):
    """A configuration value is invalid ("Expected ... Got ... instead.")."""


class ShapeMismatchError(LincaeError, ValueError):
    """A tensor or array does not have the expected shape."""


class InvalidAudioError(LincaeError, ValueError):
    """Audio handed to the library is not usable: integer samples, NaN or infinity, no samples."""


class CheckpointError(LincaeError):
    """A checkpoint or weights file is missing, corrupt, or not what it claims to be."""


class StoreFormatError(LincaeError):
    """A path is not a lincae latent store, or one of an unsupported format version."""


class StoreReplacedError(LincaeError):
    """The store a process was writing was replaced by another writer (its store id changed)."""


class StoreMismatchError(LincaeError):
    """Stores that cannot be combined (different model, geometry, format or track sets)."""


class AudioError(LincaeError):
    """An audio file cannot be read or written."""


class OutputExistsError(LincaeError, FileExistsError):
    """An output path is taken and replacing it was not asked for."""

    def __init__(self, path: object, what: str = "it") -> None:
        super().__init__(f"{path} already exists (use --overwrite or overwrite=True to replace {what})")
        self.path = path
