"""Store -> audio: files (:mod:`.files`), a WAV or FLAC stream (:mod:`.stream`), the batched
decoder of many tracks (:mod:`.engine`), its forward pass and parallel passes (:mod:`.forward`),
and decoding on a Dask cluster (:mod:`.cluster`)."""

from lincae_core.decoding.engine import DecodeTrack, iter_decode_tracks
from lincae_core.decoding.files import (
    DecodeSettings,
    DecodeSummary,
    check_model_matches,
    decode_keys,
    decode_store,
    output_rate,
    safe_relpath,
)
from lincae_core.decoding.stream import decode_to_wav_stream

__all__ = [
    "DecodeSettings",
    "DecodeSummary",
    "DecodeTrack",
    "check_model_matches",
    "decode_keys",
    "decode_store",
    "decode_to_wav_stream",
    "iter_decode_tracks",
    "output_rate",
    "safe_relpath",
]
