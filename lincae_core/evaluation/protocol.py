r"""The evaluation protocol of arXiv:2510.23530 Sec. 4 on one track: chunking, seeded decodes, scores.

The paper evaluates "on 2-second audio chunks (0.5s overlap)" and "reconstruct[s] the full track
using overlap-add" (Sec. 4.2). As the reference code (Lin-CAE ``Autoencoder`` with
``max_chunk_size`` = 2 s in samples and ``overlap_percentage = 0.25``), a track is zero-padded at
the end, cut into chunks that are encoded and decoded *on their own*, and the decoded chunks are
joined by a linear cross-fade over each overlap::

    chunk 0   |==========\                 fade-out on every chunk but the last,
    chunk 1          /==========\          fade-in on every chunk but the first;
    chunk 2                 /==========|   the two ramps of an overlap sum to 1

Latent arithmetic (``a·z``, ``Σ zᵢ``, ``z_mix − z_{mix−sᵢ}``) is done chunk by chunk on the
chunk latents. Every decode of one track uses the same noise per chunk (a function of the seed,
the track and the chunk index), so that ``Dec(a·z)`` and ``a·Dec(z)``, ``Dec(Σ zᵢ)`` and
``Dec(z_mix)``, ``ŝᵢ`` and ``Dec(Enc(sᵢ))`` differ only through their latents ("shared noise").
A decode may also carry a *role* (:class:`Decode`'s ``roles``), a tag that enters the seed: decodes
with different roles draw independent noise (:mod:`.controls`, "independent noise").

Layouts: a track ``[T]``; signals ``[K, T]``; chunks ``[N, L]`` (L = chunk samples); chunk
latents ``[K, N, D, Z]``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from lincae_core.config import EvalConfig, GainDistribution
from lincae_core.errors import ConfigError, ShapeMismatchError
from lincae_core.evaluation import metrics, sdr
from lincae_core.nn import transforms
from lincae_core.nn.model import LinCAE

__all__ = [
    "STEMS",
    "ChunkCodec",
    "Decode",
    "Encode",
    "EvalConfig",  # re-exported from lincae_core.config
    "GainDistribution",  # re-exported from lincae_core.config
    "chunk_audio",
    "chunk_generators",
    "community_sdr",
    "music_task",
    "overlap_add",
    "run_task",
    "score_music_track",
    "score_stems_track",
    "stems_task",
]

STEMS: tuple[str, ...] = ("bass", "drums", "other", "vocals")


def chunk_audio(x: torch.Tensor, chunk: int, overlap: int) -> torch.Tensor:
    """Cut a track into overlapping chunks, as the Lin-CAE reference encoder (Sec. 4.2).

    The end is zero-padded so that ``T - chunk`` is a multiple of the step ``chunk - overlap``
    (a track shorter than a chunk becomes one zero-padded chunk).

    Args:
        x: a track ``[T]``.
        chunk: chunk length in samples.
        overlap: overlap in samples, ``0 <= overlap < chunk``.

    Returns:
        Chunks ``[N, chunk]``, ``N = (T_padded - chunk) / step + 1``.
    """
    if x.dim() != 1:
        raise ShapeMismatchError(f"Expected a track [T]. Got shape {tuple(x.shape)} instead.")
    assert 0 <= overlap < chunk, f"overlap {overlap} must be in [0, chunk={chunk})"
    step = chunk - overlap
    length = x.shape[-1]
    padded = chunk if length <= chunk else chunk + math.ceil((length - chunk) / step) * step
    return torch.nn.functional.pad(x, (0, padded - length)).unfold(-1, chunk, step)  # (N, chunk)


def overlap_add(chunks: torch.Tensor, overlap: int, length: int) -> torch.Tensor:
    """Join chunks by a linear-crossfade overlap-add and trim to the track (Sec. 4.2).

    As the reference ``_overlap_add_crossfade``: the fade-in ``linspace(0, 1, overlap)`` is applied
    to every chunk but the first, its complement to every chunk but the last.

    Args:
        chunks: chunks ``[..., N, L]``.
        overlap: overlap in samples.
        length: length of the track to return.

    Returns:
        The track ``[..., length]``.
    """
    n, size = chunks.shape[-2:]
    step = size - overlap
    fade_in = torch.linspace(0.0, 1.0, overlap, dtype=chunks.dtype, device=chunks.device)
    weighted = chunks.clone()
    if overlap > 0:
        weighted[..., 1:, :overlap] *= fade_in
        weighted[..., :-1, size - overlap :] *= 1.0 - fade_in
    out = chunks.new_zeros(*chunks.shape[:-2], step * (n - 1) + size)
    for i in range(n):
        out[..., i * step : i * step + size] += weighted[..., i, :]
    assert out.shape[-1] >= length, f"chunks cover {out.shape[-1]} samples, fewer than {length}"
    return out[..., :length]


def chunk_generators(seed: int, track: str, n: int, role: str | None = None) -> list[torch.Generator]:
    """Return the decode noise generators of a track's chunks (Sec. 4.2 decodes, seeded).

    Each is a function of (seed, track, chunk index) only, so every decode of the track, with
    any checkpoint and any batching, draws the same noise for the same chunk. A ``role`` (a tag
    naming one decode among those compared) enters the seed too: decodes of different roles draw
    independent noise; ``None`` is the shared noise.
    """
    return [chunk_generator(seed, track, i, role) for i in range(n)]


def chunk_generator(seed: int, track: str, i: int, role: str | None = None) -> torch.Generator:
    """The decode noise generator of chunk ``i`` of a track (see :func:`chunk_generators`)."""
    tag = f"lincae-eval:{seed}:{track}:{i}" + ("" if role is None else f":{role}")
    digest = hashlib.sha256(tag.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class ChunkCodec:
    """Chunked encode and seeded chunked decode of signals with one model (Sec. 4.2)."""

    def __init__(self, model: LinCAE, config: EvalConfig) -> None:
        self.model = model
        self.sample_rate = int(model.config.sample_rate)
        self.chunk, self.overlap = config.chunk_samples(self.sample_rate)
        if self.chunk < model.config.n_fft:
            raise ConfigError(
                f"Expected chunks of at least n_fft = {model.config.n_fft} samples. "
                f"Got {self.chunk} ({config.chunk_s} s at {self.sample_rate} Hz) instead."
            )
        self.steps = config.steps or model.recommended_steps
        self.seed = config.seed
        self.batch_size = config.batch_size
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def encode(self, signals: torch.Tensor) -> torch.Tensor:
        """Encode each chunk on its own: signals ``[K, T]`` -> chunk latents ``[K, N, D, Z]``."""
        chunks = torch.stack([chunk_audio(s, self.chunk, self.overlap) for s in signals])  # (K, N, L)
        k, n, _ = chunks.shape
        flat = chunks.reshape(k * n, self.chunk)
        z = torch.cat(
            [
                self.model.encode(flat[i : i + self.batch_size].to(self.device)).float().cpu()
                for i in range(0, k * n, self.batch_size)
            ]
        )  # (K*N, D, Z)
        return z.reshape(k, n, *z.shape[1:])

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        track: str,
        length: int,
        steps: int | None = None,
        roles: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        """Decode chunk latents ``[K, N, D, Z]`` with the track's noise and overlap-add: ``[K, T]``
        (``steps``: sampling steps, default the codec's; ``roles``: one noise role per signal,
        default ``None`` for all, the shared noise)."""
        k, n = z.shape[:2]
        roles = [None] * k if roles is None else list(roles)
        assert len(roles) == k, f"{len(roles)} roles for {k} signals"
        # Fresh generators per signal: chunk j gets the same noise in every signal of one role.
        gens = [g for r in roles for g in chunk_generators(self.seed, track, n, r)]
        flat = z.reshape(k * n, *z.shape[2:])
        pieces = []
        for i in range(0, k * n, self.batch_size):
            rep = self.model.decode_representation(
                flat[i : i + self.batch_size].to(self.device),
                steps=steps or self.steps,
                generators=gens[i : i + self.batch_size],
            )
            audio = transforms.from_representation(rep, self.model.config).float().cpu()
            assert audio.shape[-1] >= self.chunk, f"decoded {audio.shape[-1]} < chunk {self.chunk}"
            pieces.append(audio[:, : self.chunk])
        return overlap_add(torch.cat(pieces).reshape(k, n, self.chunk), self.overlap, length)


@dataclass(frozen=True)
class Encode:
    """A task's request: encode each chunk of ``signals`` ``[K, T]`` (:meth:`ChunkCodec.encode`)."""

    signals: torch.Tensor


@dataclass(frozen=True)
class Decode:
    """A task's request: decode chunk latents (:meth:`ChunkCodec.decode`; ``roles``: the noise
    role of each signal, ``None``: the shared noise)."""

    z: torch.Tensor
    track: str
    length: int
    steps: int | None = None
    roles: tuple[str | None, ...] | None = None


R = TypeVar("R")
# A protocol computation as a generator: it yields requests (one, or a tuple answered by a tuple)
# and is sent their results, so that a runner can batch the requests of many tasks together
# (:mod:`lincae_core.evaluation.batched`) or answer them one by one (:func:`run_task`).
Task = Generator[Any, Any, R]


def run_task(codec: ChunkCodec, task: Task[R]) -> R:
    """Run one task on ``codec``, request by request (the per-track protocol)."""

    def answer(req: Encode | Decode) -> torch.Tensor:
        if isinstance(req, Encode):
            return codec.encode(req.signals)
        return codec.decode(req.z, req.track, req.length, req.steps, req.roles)

    try:
        req = next(task)
        while True:
            req = task.send(tuple(map(answer, req)) if isinstance(req, tuple) else answer(req))
    except StopIteration as stop:
        return stop.value


def _flat(z: torch.Tensor) -> torch.Tensor:
    """Chunk latents ``[N, D, Z]`` -> one item ``[1, N*D*Z]``: norms run over the whole track."""
    return z.reshape(1, -1)


def _scalars(prefix: str, scores: dict[str, torch.Tensor]) -> dict[str, float]:
    return {f"{prefix}_{k}": float(v.mean()) for k, v in scores.items()}


def score_stems_track(
    codec: ChunkCodec, stems: Sequence[torch.Tensor], track: str, keep_audio: bool = False
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """:func:`stems_task` on ``codec``, request by request."""
    return run_task(codec, stems_task(codec.sample_rate, stems, track, keep_audio))


def stems_task(
    sr: int, stems: Sequence[torch.Tensor], track: str, keep_audio: bool = False
) -> Task[tuple[dict[str, float], dict[str, torch.Tensor]]]:
    """Score additivity and separation on one multi-stem track (Sec. 4.4-4.5, Table 1).

    ``mix = Σᵢ sᵢ``; reconstruction of the mix, encoder additivity
    ``‖Enc(mix) − Σ Enc(sᵢ)‖ / ‖Enc(mix)‖``, decoder additivity ``Dec(Σ Enc(sᵢ))`` vs
    ``Dec(Enc(mix))``, and separation ``ŝᵢ = Dec(Enc(mix) − Enc(mix − sᵢ))`` vs ``Dec(Enc(sᵢ))``.

    Args:
        sr: the model's sample rate.
        stems: the stems of :data:`STEMS` in order, each ``[T]`` at the model rate.
        track: the track name (it seeds the decode noise).
        keep_audio: also return the decoded audio (the report's example track).

    Returns:
        The scores (flat dict of floats) and, with ``keep_audio``, the audio ``[T]`` by name.
    """
    s = torch.stack(list(stems))  # (4, T)
    mix = s.sum(0)
    length = mix.shape[-1]
    z = yield Encode(torch.cat([mix[None], s, mix[None] - s]))  # (9, N, D, Z)
    z_mix, z_s, z_rest = z[0], z[1:5], z[5:9]
    z_sum = z_s.sum(0)
    dec = yield Decode(torch.cat([z_mix[None], z_sum[None], z_s, z_mix[None] - z_rest]), track, length)
    dec_mix, dec_sum, dec_s, s_hat = dec[0], dec[1], dec[2:6], dec[6:10]
    out = _scalars("recon", metrics.reconstruction_scores(dec_mix, mix, sr))
    out["add_enc_err"] = float(metrics.encoder_additivity_error(_flat(z_mix), _flat(z_sum))[0])
    out.update(_scalars("add_dec", metrics.decoder_additivity(dec_sum, dec_mix, sr)))
    sep = metrics.separation_scores(s_hat, dec_s, sr)  # one value per stem
    for i, name in enumerate(STEMS):
        out.update({f"sep_{name}_{k}": float(v[i]) for k, v in sep.items()})
        out.update(community_sdr(s_hat[i], {"ae": dec_s[i], "true": s[i]}, sr, f"sep_{name}_"))
    audio: dict[str, torch.Tensor] = {}
    if keep_audio:
        audio = {"mixture": mix, "autoencoded_mixture": dec_mix, "remix_latent_sum": dec_sum}
        for i, name in enumerate(STEMS):
            audio[f"stem_{name}"], audio[f"autoencoded_{name}"] = s[i], dec_s[i]
            audio[f"separated_{name}"] = s_hat[i]
    return out, audio


def community_sdr(
    estimate: torch.Tensor, references: dict[str, torch.Tensor], sample_rate: int, prefix: str
) -> dict[str, float]:
    """SDR of a separated stem as the separation community reads it (:mod:`.sdr`), per reference.

    For each reference (``ae``: the autoencoded stem, ``true``: the stem itself), the BSSEval v4
    median over 1-s frames (``sdr_v4_<ref>``, NaN if every frame is silent), the frames skipped as
    silent (``silent_frames_<ref>``) and the MDX global SDR (``sdr_global_<ref>``).
    """
    out: dict[str, float] = {}
    for ref_name, ref in references.items():
        framed = sdr.bsseval_v4_sdr(estimate, ref, sample_rate)
        out[f"{prefix}sdr_v4_{ref_name}"] = framed.median
        out[f"{prefix}silent_frames_{ref_name}"] = float(framed.silent)
        out[f"{prefix}sdr_global_{ref_name}"] = sdr.global_sdr(estimate, ref)
    out[f"{prefix}sdr_frames"] = float(framed.frames)
    return out


def score_music_track(codec: ChunkCodec, x: torch.Tensor, a: float, track: str) -> dict[str, float]:
    """:func:`music_task` on ``codec``, request by request."""
    return run_task(codec, music_task(codec.sample_rate, x, a, track))


def music_task(sr: int, x: torch.Tensor, a: float, track: str) -> Task[dict[str, float]]:
    """Score reconstruction and homogeneity on one music track (Sec. 4.2-4.3, Table 2).

    Reconstruction ``Dec(Enc(x))`` vs ``x``; encoder homogeneity
    ``‖Enc(a·x) − a·Enc(x)‖ / ‖a·Enc(x)‖``; decoder homogeneity ``Dec(a·z_x)`` vs ``a·Dec(z_x)``.

    Args:
        sr: the model's sample rate.
        x: the track ``[T]`` at the model rate.
        a: the track's gain.
        track: the track name (it seeds the decode noise).

    Returns:
        The scores, with the gain under ``"gain"``.
    """
    z = yield Encode(torch.stack([x, a * x]))  # (2, N, D, Z)
    z_x, z_ax = z[0], z[1]
    dec = yield Decode(torch.stack([z_x, a * z_x]), track, x.shape[-1])
    out = _scalars("recon", metrics.reconstruction_scores(dec[0], x, sr))
    out.update(_scalars("dec_hom", metrics.decoder_homogeneity(dec[1], a * dec[0], sr)))
    out["enc_hom_err"] = float(metrics.encoder_homogeneity_error(_flat(z_ax), _flat(z_x), a)[0])
    out["gain"] = float(a)
    return out
