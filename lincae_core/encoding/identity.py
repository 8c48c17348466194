"""What identifies an encode: one table (:data:`FIELDS`), read three ways.

- :func:`encode_args`: the arguments recorded in the store's lineage (the command line's part);
- :func:`expected_encoding`: the store's ``encoding`` attribute as this encode plans it, and
  expects to find it when it resumes a store;
- :func:`check_resume`: whether an existing store may be resumed by this encode. A field that
  changes the latents' layout or meaning (model, window, channels, dtype, inputs) refuses the
  store, naming the field; a speed option (batch size, memory format, autocast, compile, parallel
  passes) only warns that the latents may differ in the last bits from an uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from lincae_core.config import InferenceConfig
from lincae_core.discovery import Source, sources_fingerprint
from lincae_core.encoding.schedule import BLOCK_TRACKS
from lincae_core.encoding.settings import EncodeSettings
from lincae_core.errors import StoreMismatchError
from lincae_core.nn.model import LinCAE
from lincae_core.store import LatentStore

__all__ = [
    "FIELDS",
    "INPUT_FIELDS",
    "EncodeRequest",
    "Field",
    "check_resume",
    "encode_args",
    "expected_encoding",
    "inputs_changed",
]

log = logging.getLogger(__name__)

RECORD, REFUSE, WARN = "record", "refuse", "warn"


class Inputs(NamedTuple):
    """The input set of an encode: how many sources, and their fingerprint."""

    n: int
    sha256: str


class EncodeRequest(NamedTuple):
    """What an encode is asked to do (``model`` and ``inputs``: None for the lineage's args)."""

    inference: InferenceConfig
    settings: EncodeSettings
    model: LinCAE | None = None
    inputs: Inputs | None = None

    @classmethod
    def of(
        cls,
        model: LinCAE,
        inference: InferenceConfig,
        settings: EncodeSettings,
        sources: Sequence[Source],
        stamps: Sequence[str] | None = None,
    ) -> EncodeRequest:
        """The request of an encode of ``sources`` (``stamps``: their :func:`source_stamp`, when
        taken already) with ``model``."""
        return cls(inference, settings, model, Inputs(len(sources), sources_fingerprint(sources, stamps)))


@dataclass(frozen=True)
class Field:
    """One thing that identifies an encode.

    Attributes:
        name: Its key in the lineage's args and the store's ``encoding``; its name in messages.
        want: This encode's value.
        lineage: Recorded in the lineage's args (:func:`encode_args`).
        stored: Recorded in the store's ``encoding`` attribute (:func:`expected_encoding`).
        resume: ``REFUSE``: another value in the store is an error; ``WARN``: it is logged;
            ``RECORD``: recorded only.
        have: The store's value, for a field that is not in ``encoding``.
        old_default: ``WARN``: the value of a store planned before the field existed.
        asked_only: ``REFUSE``: checked only when this encode asks for a value (not None).
    """

    name: str
    want: Callable[[EncodeRequest], Any]
    lineage: bool = False
    stored: bool = False
    resume: str = RECORD
    have: Callable[[LatentStore], Any] | None = None
    old_default: Any = None
    asked_only: bool = False


def _model(r: EncodeRequest) -> LinCAE:
    assert r.model is not None, "a field of the store needs the model"
    return r.model


def _inputs(r: EncodeRequest) -> Inputs:
    assert r.inputs is not None, "a field of the store needs the inputs"
    return r.inputs


def _store_has(name: str) -> Callable[[LatentStore], Any]:
    return lambda store: getattr(store, name)


# The speed options (resume=WARN) change only the last bits of the latents.
# In the order of the store's ``encoding`` attribute; refusals are checked in this order.
FIELDS: tuple[Field, ...] = (
    Field("model id", lambda r: _model(r).model_id, resume=REFUSE, have=_store_has("model_id")),
    Field(
        "model config", lambda r: _model(r).config.to_dict(), resume=REFUSE, have=_store_has("model_config")
    ),
    Field(
        "latent channels", lambda r: r.settings.latent_channels, resume=REFUSE, have=_store_has("channels")
    ),
    Field("dtype", lambda r: r.settings.dtype, lineage=True, resume=REFUSE, have=_store_has("dtype")),
    Field("window_s", lambda r: r.inference.window_s, lineage=True, stored=True),
    Field("overlap_s", lambda r: r.inference.overlap_s, lineage=True, stored=True),
    Field("window_frames", lambda r: r.inference.frames(_model(r).config)[0], stored=True, resume=REFUSE),
    Field("overlap_frames", lambda r: r.inference.frames(_model(r).config)[1], stored=True, resume=REFUSE),
    Field("batch_size", lambda r: r.inference.batch_size, lineage=True, stored=True, resume=WARN),
    Field(
        "channels_last",
        lambda r: r.settings.channels_last,
        lineage=True,
        stored=True,
        resume=WARN,
        old_default=False,
    ),
    Field(
        "autocast", lambda r: r.settings.autocast, lineage=True, stored=True, resume=WARN, old_default="none"
    ),
    Field("compile", lambda r: r.settings.compile, lineage=True, stored=True, resume=WARN, old_default=False),
    Field(
        "parallel_forward",
        lambda r: r.settings.parallel_forward,
        lineage=True,
        stored=True,
        resume=WARN,
        old_default=False,
    ),
    Field("block_tracks", lambda r: BLOCK_TRACKS, stored=True, resume=REFUSE),
    Field("channels", lambda r: r.settings.channels, lineage=True, stored=True, resume=REFUSE),
    # checked by encode_files, whose message names --shard
    Field("shards", lambda r: r.settings.shards, lineage=True, stored=True),
    Field("inputs", lambda r: _inputs(r).n, stored=True, resume=REFUSE),
    Field("inputs_sha256", lambda r: _inputs(r).sha256, stored=True, resume=REFUSE),
    # asked for explicitly (not None): the store must have it
    Field(
        "chunk_frames",
        lambda r: r.settings.chunk_frames,
        lineage=True,
        resume=REFUSE,
        have=_store_has("chunk_frames"),
        asked_only=True,
    ),
    Field(
        "checksums",
        lambda r: r.settings.checksums,
        resume=REFUSE,
        have=lambda store: bool(store.checksums),
        asked_only=True,
    ),
)


def encode_args(
    library: str,
    files_from: str | None,
    extensions: Sequence[str],
    checkpoint: str | None,
    inference: InferenceConfig,
    settings: EncodeSettings,
) -> dict[str, Any]:
    """The JSON-ready arguments of an encode, as recorded in the store's lineage."""
    request = EncodeRequest(inference, settings)
    return {
        "library": library,
        "files_from": files_from,
        "ext": list(extensions),
        "checkpoint": checkpoint,
        **{f.name: f.want(request) for f in FIELDS if f.lineage},
    }


def expected_encoding(request: EncodeRequest) -> dict[str, Any]:
    """The store's ``encoding`` attribute as this encode plans it (and expects it on resume)."""
    return {f.name: f.want(request) for f in FIELDS if f.stored}


def _short(v: Any) -> Any:
    return f"{v[:12]}..." if isinstance(v, str) and len(v) > 16 else v


INPUT_FIELDS = ("inputs", "inputs_sha256")


def inputs_changed(store: LatentStore, encoding: Mapping[str, Any]) -> bool:
    """Whether the store was planned from another input set than this encode's."""
    have = store.encoding or {}
    return any(have.get(name) != encoding[name] for name in INPUT_FIELDS)


def check_resume(
    store: LatentStore, request: EncodeRequest, encoding: Mapping[str, Any], inputs: bool = True
) -> None:
    """Refuse to resume a store made by another model, config, window or input set; warn about
    another speed option.

    Args:
        store: The existing store.
        request: This encode.
        encoding: What this encode expects in the store's ``encoding`` (:func:`expected_encoding`,
            with the batch size the store was planned with when this encode's is ``auto``).
        inputs: Check the input set too (False: the caller grows the store,
            :mod:`lincae_core.encoding.grow`).

    Raises:
        StoreMismatchError: Naming the first field that differs, both values and what to do.
    """
    have = store.encoding or {}
    for f in FIELDS:
        if f.resume != REFUSE or (not inputs and f.name in INPUT_FIELDS):
            continue
        want = encoding[f.name] if f.stored else f.want(request)
        if f.asked_only and want is None:
            continue
        got = have.get(f.name) if f.stored or f.have is None else f.have(store)
        if got != want:
            raise StoreMismatchError(
                f"{store.path} was made with another {f.name} (store: {_short(got)}, this encode: "
                f"{_short(want)}); use --overwrite to replace it, or another output path."
            )
    for f in FIELDS:
        if f.resume == WARN and have.get(f.name, f.old_default) != encoding[f.name]:
            log.warning(
                "%s was planned with %s=%s, this run uses %s: latents may differ in the "
                "last bits from an uninterrupted run.",
                store.path,
                f.name,
                have.get(f.name, f.old_default),
                encoding[f.name],
            )
