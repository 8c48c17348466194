"""Controls that read the separation numbers: doing nothing, decode-then-subtract, independent noise.

Three readings beside the paper's protocol (:mod:`.protocol`); none changes its numbers:

- **Do nothing** (:func:`do_nothing_scores`): the mixture itself, ``ŝᵢ = mix``, as the estimate of
  every stem, scored against the stem; no model, computed once per sample rate. A separation that
  does not beat it has not separated anything.
- **Decode-then-subtract** (:data:`ESTIMATES`): the subtraction done on audio, after decoding:
  ``Dec(Enc(mix)) − Dec(Enc(mix − sᵢ))``, the audio twin of the paper's latent estimate
  ``Dec(Enc(mix) − Enc(mix − sᵢ))`` (the same two encodes, subtracted after instead of before the
  decoder), and ``Dec(Enc(mix)) − Σⱼ≠ᵢ Dec(Enc(sⱼ))`` (every other stem decoded on its own).
  Latent arithmetic is worth doing where it beats these.
- **Independent noise** (:data:`NOISES`): the protocol decodes every signal of a track with the
  same noise per chunk, so two compared decodes differ only through their latents ("shared").
  Under "independent" noise no two decodes of one comparison draw the same noise (a role enters
  the seed, :func:`.protocol.chunk_generator`), so the decoder's sampling variance counts against
  the score, as it does for a user who decodes a separated stem and its reference apart. At the
  least cost: ``Dec(Enc(mix))``, each ``Dec(Enc(sᵢ))`` and Table 2's ``Dec(z_x)`` are decoded
  again, each with a noise of its own (5 decodes a stems track, 1 a Table 2 track); the decodes
  they are compared with, ``Dec(Σ Enc(sᵢ))``, ``ŝᵢ``, ``Dec(Enc(mix − sᵢ))`` and ``Dec(a·z_x)``,
  keep the shared noise (never two of them in one comparison).

:func:`controls_stems_task` and :func:`controls_music_task` wrap :func:`.protocol.stems_task` and
:func:`.protocol.music_task`: the same encode request and the same shared-noise decode request
(their scores are the protocol's, bit for bit), plus the extra decodes as further requests of the
same round, so that :mod:`.batched` runs them in the same passes.

Scores are flat dicts keyed ``"<noise>/<estimate>/<stem>/<metric>_<reference>"`` and
``"<noise>/decoder/<metric>"``; :func:`summarize` aggregates them over tracks as
:mod:`.sdr` does (BSSEval v4: median of track medians; every other figure: the mean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lincae_core.evaluation import metrics
from lincae_core.evaluation.protocol import (
    STEMS,
    Decode,
    Task,
    community_sdr,
    music_task,
    stems_task,
)
from lincae_core.evaluation.sdr import mean_over_tracks, median_over_tracks

__all__ = [
    "ESTIMATES",
    "NOISES",
    "NOISE_SETTINGS",
    "controls_music_task",
    "controls_stems_task",
    "do_nothing_scores",
    "estimate_scores",
    "summarize",
]

# The separation estimates, latent-domain first (the paper's, Sec. 4.5), then audio-domain.
ESTIMATES: dict[str, str] = {
    "latent_subtract": "Dec(Enc(mix) − Enc(mix − sᵢ))",
    "decode_subtract": "Dec(Enc(mix)) − Dec(Enc(mix − sᵢ))",
    "decode_subtract_stems": "Dec(Enc(mix)) − Σⱼ≠ᵢ Dec(Enc(sⱼ))",
}
DO_NOTHING = "mix = Σⱼ sⱼ, the mixture itself as the estimate of every stem (no model)"
NOISES: tuple[str, ...] = ("shared", "independent")
NOISE_SETTINGS: dict[str, str] = {
    "shared": "every decode of a track draws the same noise per chunk (seed, track, chunk): two "
    "compared decodes differ only through their latents (the paper's protocol; Tables 1-2, the "
    "separation SDR and the linearity verdict use it)",
    "independent": "no two decodes of a comparison draw the same noise: Dec(Enc(mix)), each "
    "Dec(Enc(sᵢ)) and Dec(z_x) are decoded again with a noise of their own (seed, track, chunk and "
    "the decode's role), against Dec(Σ Enc(sᵢ)), ŝᵢ, Dec(Enc(mix − sᵢ)) and Dec(a·z_x) with the "
    "shared noise: the decoder's sampling variance counts against the score",
}
REFERENCES: dict[str, str] = {"ae": "the autoencoded stem Dec(Enc(sᵢ))", "true": "the stem sᵢ itself"}


def estimate_scores(
    estimate: torch.Tensor, references: Mapping[str, torch.Tensor], sample_rate: int, prefix: str
) -> dict[str, float]:
    """Score the 4 stem estimates ``[4, T]`` against each reference ``[4, T]`` (stems in order).

    Per stem and reference: SI-SDR and MSS (``si_sdr_<ref>``, ``mss_<ref>``: Table 1's pair,
    :func:`.metrics.separation_scores`) and the community SDRs of :func:`.protocol.community_sdr`.
    Keys are ``f"{prefix}{stem}/{metric}"``.
    """
    out: dict[str, float] = {}
    per_ref = {ref: metrics.separation_scores(estimate, x, sample_rate) for ref, x in references.items()}
    for i, stem in enumerate(STEMS):
        p = f"{prefix}{stem}/"
        for ref, scores in per_ref.items():
            out.update({f"{p}{k}_{ref}": float(v[i]) for k, v in scores.items()})
        out.update(community_sdr(estimate[i], {r: x[i] for r, x in references.items()}, sample_rate, p))
    return out


def do_nothing_scores(stems: Sequence[torch.Tensor], sample_rate: int) -> dict[str, float]:
    """The mixture ``Σ sⱼ`` as the estimate of every stem, against the stem (no model).

    Args:
        stems: the 4 stems of :data:`.protocol.STEMS`, each ``[T]``.
        sample_rate: their rate (the BSSEval frames are 1 s).

    Returns:
        ``"do_nothing/<stem>/<metric>_true"``: SI-SDR, MSS, BSSEval v4 and MDX SDR.
    """
    s = torch.stack(list(stems))
    mix = s.sum(0)
    return estimate_scores(mix.expand_as(s).contiguous(), {"true": s}, sample_rate, "do_nothing/")


def _separation(
    noise: str,
    sr: int,
    s: torch.Tensor,
    dec_mix: torch.Tensor,
    dec_sum: torch.Tensor,
    dec_s: torch.Tensor,
    s_hat: torch.Tensor,
    dec_rest: torch.Tensor,
) -> dict[str, float]:
    """Every estimate of :data:`ESTIMATES` and decoder additivity under one noise setting."""
    out = {f"{noise}/decoder/add_dec_{k}": float(v[0]) for k, v in _pair(dec_sum, dec_mix, sr).items()}
    others = dec_s.sum(0, keepdim=True) - dec_s  # Σⱼ≠ᵢ Dec(Enc(sⱼ)), one row per stem i
    estimates = {
        "latent_subtract": s_hat,
        "decode_subtract": dec_mix[None] - dec_rest,
        "decode_subtract_stems": dec_mix[None] - others,
    }
    for name, est in estimates.items():
        out.update(estimate_scores(est, {"ae": dec_s, "true": s}, sr, f"{noise}/{name}/"))
    return out


def _pair(estimate: torch.Tensor, reference: torch.Tensor, sr: int) -> dict[str, torch.Tensor]:
    return metrics.reconstruction_scores(estimate[None], reference[None], sr)


def controls_stems_task(
    sr: int,
    stems: Sequence[torch.Tensor],
    track: str,
    keep_audio: bool = False,
    independent: bool = True,
) -> Task[tuple[dict[str, float], dict[str, float], dict[str, torch.Tensor]]]:
    """:func:`.protocol.stems_task` and its controls on one multi-stem track.

    Returns:
        The protocol's scores and audio (exactly :func:`.protocol.stems_task`'s), and the controls'
        scores: the estimates of :data:`ESTIMATES` and decoder additivity under shared noise and,
        with ``independent``, under independent noise. With ``keep_audio`` the audio also holds
        ``decode_subtract_<stem>``, ``Dec(Enc(mix)) − Dec(Enc(mix − sᵢ))`` (shared noise).
    """
    s = torch.stack(list(stems))
    inner = stems_task(sr, stems, track, keep_audio)
    z = yield next(inner)  # the protocol's encode: [mix, s₁..s₄, mix − s₁..mix − s₄]
    protocol_decode = inner.send(z)
    z_mix, z_s, z_rest = z[0], z[1:5], z[5:9]
    length = s.shape[-1]
    requests: list[Decode] = [protocol_decode, Decode(z_rest, track, length)]
    if independent:  # Dec(z_mix) and each Dec(z_s) anew, each with a noise of its own
        roles = ("mix", *(f"stem:{n}" for n in STEMS))
        requests.append(Decode(torch.cat([z_mix[None], z_s]), track, length, roles=roles))
    answers = yield tuple(requests)
    try:
        inner.send(answers[0])
        raise AssertionError("stems_task asked for more than one decode")
    except StopIteration as stop:
        scores, audio = stop.value
    dec = answers[0]  # [Dec(z_mix), Dec(Σ z_s), Dec(z_s) x4, ŝ x4], shared noise
    dec_mix, dec_rest = dec[0], answers[1]
    out = _separation("shared", sr, s, dec_mix, dec[1], dec[2:6], dec[6:10], dec_rest)
    if independent:  # [Dec(z_mix), Dec(z_s) x4], each with a noise of its own
        ind = answers[2]
        out.update(_separation("independent", sr, s, ind[0], dec[1], ind[1:5], dec[6:10], dec_rest))
    if keep_audio:
        audio.update({f"decode_subtract_{n}": dec_mix - dec_rest[i] for i, n in enumerate(STEMS)})
    return scores, out, audio


def controls_music_task(
    sr: int, x: torch.Tensor, a: float, track: str, independent: bool = True
) -> Task[tuple[dict[str, float], dict[str, float]]]:
    """:func:`.protocol.music_task` and decoder homogeneity under both noise settings.

    Returns:
        The protocol's scores (exactly :func:`.protocol.music_task`'s) and
        ``"<noise>/decoder/dec_hom_<snr|mss>"``: ``Dec(a·z_x)`` vs ``a·Dec(z_x)`` with the shared
        noise and, with ``independent``, against ``Dec(z_x)`` decoded again with its own noise.
    """
    inner = music_task(sr, x, a, track)
    z = yield next(inner)
    protocol_decode = inner.send(z)
    requests: list[Decode] = [protocol_decode]
    if independent:
        requests.append(Decode(z[0][None], track, x.shape[-1], roles=("x",)))
    answers = yield tuple(requests)
    try:
        inner.send(answers[0])
        raise AssertionError("music_task asked for more than one decode")
    except StopIteration as stop:
        scores = stop.value
    dec = answers[0]  # [Dec(z_x), Dec(a·z_x)], shared noise
    out = {f"shared/decoder/dec_hom_{k}": float(v[0]) for k, v in _pair(dec[1], a * dec[0], sr).items()}
    if independent:
        ind = _pair(dec[1], a * answers[1][0], sr)
        out.update({f"independent/decoder/dec_hom_{k}": float(v[0]) for k, v in ind.items()})
    return scores, out


_NAMES = {"sdr_v4": "bsseval_v4", "sdr_global": "mdx_global"}


def summarize(rows: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Aggregate per-track control scores over tracks into a nested dict.

    ``sdr_v4_*``: the median of the track medians (:func:`.sdr.median_over_tracks`, NaN tracks
    left out); ``silent_frames_*`` and ``sdr_frames``: the sum; every other figure: the mean.
    ``"<noise>/<estimate>/<stem>/<metric>_<ref>"`` becomes
    ``out[noise][estimate][stem][ref][metric]`` with the names of :meth:`.result.EvalResult.separation_sdr`
    (``bsseval_v4``, ``mdx_global``, ``si_sdr``, ``mss``, ``silent_frames``; ``frames`` per stem),
    ``"<noise>/decoder/<metric>"`` becomes ``out[noise]["decoder"][metric]``.
    """
    out: dict[str, Any] = {}
    for key in rows[0] if rows else {}:
        values = [r[key] for r in rows]
        *path, metric = key.split("/")
        value: float | int | None
        if metric.startswith("sdr_v4_"):
            value = median_over_tracks(values)
        elif metric.startswith("silent_frames_") or metric == "sdr_frames":
            value = int(sum(values))
        else:
            value = mean_over_tracks(values)
        if metric == "sdr_frames":
            path, metric = path, "frames"
        elif path[-1] != "decoder":
            name, ref = metric.rsplit("_", 1)
            path, metric = [*path, ref], _NAMES.get(name, name)
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[metric] = value
    return out
