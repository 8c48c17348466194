"""Measure how well latent-domain edits hold for a model: decoded edit vs the same edit on audio.

For each held-out track (``--corpus``: ``<track>/{mixture,bass,drums,other,vocals}.wav``, the
first ``--seconds`` s at the model rate), every edit is applied to the latents exactly as the
store operations do (``ops.plan.FrameShape``, per-track gains; the engine is tested equal to
it) and decoded with a fixed seed; the reference is the same edit applied to the audio. Each row
reports MSS (lower is better) and SNR in dB (higher is better) of

- ``latent``: Dec(edit(Enc(x))) vs edit(x) -- what a user gets;
- ``ceiling``: Dec(Enc(edit(x))) vs edit(x) -- the model's own reconstruction of the edited
  audio, i.e. the best any latent edit could reach with this model;

so the gap between the two is what the linearity costs. Fades are also scored on their regions
alone (``fade_*``: the first and last max(fade, 0.5 s) of the track), where the gain changes.
Loudness normalization reports the decoded loudness error |L(Dec(a z)) - target| in LU
(median, 90th percentile) next to the model's own error |L(Dec(Enc(x))) - L(x)| and the
error of the gain as the decoder realizes it, |L(Dec(a z)) - L(Dec(z)) - 20 log10 a|
(homogeneity in loudness).

``--only concat`` measures ``lincae concat``: pairs of held-out tracks (track i, then track
i+1), ``--seconds`` each, joined with a crossfade of S s exactly as the store operation does
(``ops.envelopes.ramp_gains`` on the frame grid; the engine is tested equal to it), compared with
the same crossfade on the audio (``latent`` and ``ceiling`` as above) and with the same crossfade
on the decoded tracks, ``xfade(Dec(z_a), Dec(z_b))`` (``vs_decoded``: what linearity promises);
``join_*`` scores the overlap and 0.5 s either side alone.

``--only stems`` measures ``extract --stem`` (plain leave-one-out) against ``--consistent``: SI-SDR
of each decoded stem estimate against the true stem and against the autoencoded stem Dec(Enc(s)),
in the linear and the affine form (``lincae_core.evaluation.metrics.si_sdr``).

Usage (the tables of docs/editing.md)::

    OMP_NUM_THREADS=1 python scripts/measure_edits.py --tracks 8 --seconds 10 -o edits.json
    OMP_NUM_THREADS=1 python scripts/measure_edits.py --only concat --tracks 8 --seconds 5 -o concat.json
    OMP_NUM_THREADS=1 python scripts/measure_edits.py --only stems --tracks 8 --seconds 10 -o stems.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lincae_core import decode, encode, load_model
from lincae_core.audio import load_audio
from lincae_core.encoding.origin import encode_origin
from lincae_core.evaluation.metrics import mss_distance, si_sdr, snr
from lincae_core.inference import InferenceConfig
from lincae_core.loudness import integrated_loudness
from lincae_core.ops.channels import MS_MATRIX, pan_gains
from lincae_core.ops.envelopes import envelope_gains, fade_gains, ramp_gains
from lincae_core.ops.plan import FrameShape
from lincae_core.ops.stems import stem_gains

CORPUS = "/work/main/data/corpus16k/valid"
Edit = Callable[[np.ndarray], np.ndarray]  # [C, T] audio -> [C, T]


def scores(y: np.ndarray, ref: np.ndarray, sr: int) -> tuple[float, float]:
    a, b = torch.from_numpy(y)[None], torch.from_numpy(ref)[None]
    return float(mss_distance(a, b, sr)[0]), float(snr(a, b)[0])


class Codec:
    """Enc / Dec of ``[C, T]`` float32 audio; latents as the store's ``[F, C, D]``."""

    def __init__(self, checkpoint: str | None, seed: int = 0) -> None:
        self.model = load_model(checkpoint) if checkpoint else load_model()
        self.sr, self.spf = self.model.config.sample_rate, self.model.config.samples_per_frame
        self.seed = seed

    def enc(self, x: np.ndarray) -> np.ndarray:
        return encode(self.model, x[None]).numpy()[0].transpose(2, 0, 1)  # [F, C, D]

    def dec(self, z: np.ndarray, n: int) -> np.ndarray:
        zz = torch.from_numpy(np.ascontiguousarray(z.transpose(1, 2, 0)))[None]
        return decode(self.model, zz, num_samples=n, seed=self.seed).numpy()[0]


def curve_audio(shape: FrameShape, n: int, sr: int) -> np.ndarray:
    """The shape's gain curve at every sample time (the audio-domain reference edit)."""
    t = np.arange(n) / sr
    g = fade_gains(t, n / sr, shape.fade_in_s, shape.fade_out_s)
    return g * envelope_gains(t, shape.times, shape.gains) if shape.times else g


def shaped_edit(codec: Codec, x: np.ndarray, shape: FrameShape) -> dict[str, float]:
    n = x.shape[-1]
    ref = (x * curve_audio(shape, n, codec.sr)).astype(np.float32)
    if shape.matrix is not None:
        ref = np.asarray(shape.matrix, np.float32) @ ref
    y = codec.dec(shape.apply(codec.enc(x), 0, n), n)
    ceil = codec.dec(codec.enc(ref), n)
    (m, s), (mc, sc) = scores(y, ref, codec.sr), scores(ceil, ref, codec.sr)
    out = {"mss": m, "snr": s, "ceiling_mss": mc, "ceiling_snr": sc}
    if shape.fade_in_s:  # the fades alone: first and last max(fade, 0.5 s), where the gain changes
        k = int(max(shape.fade_in_s, 0.5) * codec.sr)
        idx = np.r_[0:k, n - k : n]
        (m, s) = scores(y[:, idx], ref[:, idx], codec.sr)
        (mc, sc) = scores(ceil[:, idx], ref[:, idx], codec.sr)
        out.update(fade_mss=m, fade_snr=s, fade_ceiling_mss=mc, fade_ceiling_snr=sc)
    return out


def edits(sr: int, spf: int) -> dict[str, FrameShape]:
    out = {"gain -6 dB (constant)": FrameShape(sr, spf, (0.0,), (10 ** (-6 / 20),))}
    for f in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0):
        out[f"fade in+out {f:g} s"] = FrameShape(sr, spf, fade_in_s=f, fade_out_s=f)
    out["envelope: dB ramp 0 > -20 > 0 dB over 10 s"] = FrameShape(sr, spf, (0.0, 5.0, 10.0), (1.0, 0.1, 1.0))
    out["envelope: gate 1 s on / 1 s off (0.1 s ramps)"] = FrameShape(
        sr,
        spf,
        tuple(t for k in range(5) for t in (2 * k, 2 * k + 0.9, 2 * k + 1.0, 2 * k + 1.9)),
        tuple(g for _ in range(5) for g in (1.0, 1.0, 0.0, 0.0)),
    )
    return out


def stereo_edits(sr: int, spf: int) -> dict[str, FrameShape]:
    gl, gr = pan_gains(0.5)
    return {
        "pan +0.5 (constant power)": FrameShape(sr, spf, matrix=((gl, 0.0), (0.0, gr))),
        "mid/side (M=(L+R)/2, S=(L-R)/2)": FrameShape(sr, spf, matrix=MS_MATRIX),
    }


def loudness_errors(codec: Codec, xs: list[np.ndarray], targets: tuple[float, ...]) -> dict:
    out: dict[str, object] = {}
    decoded = [codec.dec(codec.enc(x), x.shape[-1]) for x in xs]
    loud = [integrated_loudness(x, codec.sr) for x in xs]
    model_err = [abs(integrated_loudness(y, codec.sr) - lx) for y, lx in zip(decoded, loud, strict=True)]
    own = [integrated_loudness(y, codec.sr) for y in decoded]
    for t in targets:
        err, rel = [], []
        for x, lx, ly in zip(xs, loud, own, strict=True):
            a = 10 ** ((t - lx) / 20)
            got = integrated_loudness(codec.dec(a * codec.enc(x), x.shape[-1]), codec.sr)
            err.append(abs(got - t))  # what a user gets
            rel.append(abs(got - (ly + 20 * np.log10(a))))  # the gain as realized by the decoder
        out[f"{t:g}"] = {
            **_spread(err),
            "gain_error": _spread(rel),
            "gains_db": _spread([t - lx for lx in loud]),
        }
    out["model Dec(Enc(x))"] = _spread(model_err)
    return out


def _spread(v: list[float]) -> dict[str, float]:
    a = np.abs(np.asarray(v)) if v else np.zeros(1)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "max": float(a.max())}


def xfade(parts: list[np.ndarray], w: int, spf: int, latent: bool) -> np.ndarray:
    """Overlap-add of ``parts`` by ``w`` frames with linear ramps: latents ``[F, C, D]`` with the
    store operation's ``ramp_gains``, or audio ``[C, T]`` (each part but the last a whole number
    of frames) with the same ramps per sample, ``(s + 0.5) / (w * spf)``."""
    axis, unit = (0, 1) if latent else (-1, spf)
    n = w * unit
    out = parts[0].astype(np.float32)
    for p in parts[1:]:
        p = p.astype(np.float32)
        if n:
            up = ramp_gains(0, w, w, w, 0) if latent else ((np.arange(n) + 0.5) / n).astype(np.float32)
            up = up[:, None, None] if latent else up
            head = np.take(p, range(n), axis=axis) * up
            tail = np.take(out, range(out.shape[axis] - n, out.shape[axis]), axis=axis) * up[::-1]
            keep = np.take(out, range(out.shape[axis] - n), axis=axis)
            out = np.concatenate(
                [keep, tail + head, np.take(p, range(n, p.shape[axis]), axis=axis)], axis=axis
            )
        else:
            out = np.concatenate([out, p], axis=axis)
    return out


def concat_rows(codec: Codec, xs: list[np.ndarray], crossfades: tuple[float, ...]) -> list[dict]:
    """One row per pair (track i, track i+1) and crossfade: see the module docstring."""
    rows, spf = [], codec.spf
    for i, a in enumerate(xs):
        b = xs[(i + 1) % len(xs)]
        fa = -(-a.shape[-1] // spf)
        pa = np.pad(a, ((0, 0), (0, fa * spf - a.shape[-1])))  # the frame grid: whole frames
        za, zb = codec.enc(a), codec.enc(b)
        da, db = codec.dec(za, fa * spf), codec.dec(zb, b.shape[-1])
        row = {}
        for s in crossfades:
            w = int(round(s * codec.sr / spf))
            ref = xfade([pa, b], w, spf, latent=False)
            y = codec.dec(xfade([za, zb], w, spf, latent=True), ref.shape[-1])
            ceil = codec.dec(codec.enc(ref), ref.shape[-1])
            dref = xfade([da, db], w, spf, latent=False)
            j0, j1 = max(0, (fa - w) * spf - codec.sr // 2), fa * spf + codec.sr // 2
            res = {}
            for name, (u, v) in {"latent": (y, ref), "ceiling": (ceil, ref), "vs_decoded": (y, dref)}.items():
                res[f"{name}_mss"], res[f"{name}_snr"] = scores(u, v, codec.sr)
                res[f"join_{name}_mss"], _ = scores(u[:, j0:j1], v[:, j0:j1], codec.sr)
            row[f"crossfade {s:g} s ({w} frames)"] = res
        rows.append(row)
    return rows


def stem_rows(codec: Codec, stems: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Per track, SI-SDR of plain and consistent stem estimates, linear and affine forms."""
    names = ("vocals", "bass", "drums", "other")
    origin = encode_origin(codec.model, InferenceConfig(), 1).mean(0)[None]  # [1, C, D]
    rows = []
    for st in stems.values():
        n = st["mixture"].shape[-1]
        zs = [codec.enc(st["mixture"])] + [codec.enc(st[k]) for k in names]
        auto = {k: codec.dec(z, n) for k, z in zip(names, zs[1:], strict=True)}
        t = {k: torch.from_numpy(st[k])[None] for k in names}
        ae = [torch.from_numpy(auto[k])[None] for k in names]
        row = {
            "model: Dec(Enc(s)) vs s": {
                "sdr_true": float(
                    np.mean([float(si_sdr(y, t[k])[0]) for y, k in zip(ae, names, strict=True)])
                ),
                "mss_true": float(
                    np.mean(
                        [float(mss_distance(y, t[k], codec.sr)[0]) for y, k in zip(ae, names, strict=True)]
                    )
                ),
            }
        }
        for form in ("linear", "affine"):
            for consistent in (False, True):
                sdr_true, sdr_auto, mss_true = [], [], []
                for i, k in enumerate(names):
                    g = stem_gains(len(names), i, consistent)
                    z = sum(np.float32(gk) * zk for gk, zk in zip(g, zs, strict=True))
                    if form == "affine":
                        z = z + np.float32(1 - sum(g)) * origin
                    y = torch.from_numpy(codec.dec(z, n))[None]
                    sdr_true.append(float(si_sdr(y, torch.from_numpy(st[k])[None])[0]))
                    sdr_auto.append(float(si_sdr(y, torch.from_numpy(auto[k])[None])[0]))
                    mss_true.append(float(mss_distance(y, t[k], codec.sr)[0]))
                key = f"{form} {'consistent' if consistent else 'plain'}"
                row[key] = {
                    **{f"sdr_true_{k}": v for k, v in zip(names, sdr_true, strict=True)},
                    "sdr_true": float(np.mean(sdr_true)),
                    "sdr_auto": float(np.mean(sdr_auto)),
                    "mss_true": float(np.mean(mss_true)),
                    **{f"sdr_auto_{k}": v for k, v in zip(names, sdr_auto, strict=True)},
                }
        rows.append(row)
    return rows


def mean_rows(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {k: {m: float(np.mean([r[k][m] for r in rows])) for m in rows[0][k]} for k in rows[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default=CORPUS)
    p.add_argument("--tracks", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("-c", "--checkpoint", default=None)
    p.add_argument("-o", "--out", default=None)
    p.add_argument(
        "--only",
        choices=("edits", "concat", "stems"),
        default="edits",
        help="edits: the gain/fade/pan/loudness tables; concat; stems (extract --stem)",
    )
    a = p.parse_args()
    torch.set_num_threads(1)
    codec = Codec(a.checkpoint)
    dirs = sorted(Path(a.corpus).iterdir())[: a.tracks]
    n = int(a.seconds * codec.sr)
    stems = {
        d.name: {
            s: load_audio(d / f"{s}.wav", codec.sr)[:, :n]
            for s in ("mixture", "vocals", "bass", "drums", "other")
        }
        for d in dirs
    }
    if a.only != "edits":
        rows = (
            concat_rows(codec, [s["mixture"] for s in stems.values()], (0.0, 0.25, 0.5, 1.0, 2.0))
            if a.only == "concat"
            else stem_rows(codec, stems)
        )
        result = {"tracks": [d.name for d in dirs], "seconds": a.seconds, a.only: mean_rows(rows)}
        _write(result, a.out)
        return
    mono, stereo = [], []
    for name, st in stems.items():
        x = st["mixture"]
        ceiling = dict(zip(("mss", "snr"), scores(codec.dec(codec.enc(x), n), x, codec.sr), strict=True))
        mono.append(
            {
                "model ceiling Dec(Enc(x)) vs x": {
                    **ceiling,
                    "ceiling_mss": ceiling["mss"],
                    "ceiling_snr": ceiling["snr"],
                },
                **{k: shaped_edit(codec, x, s) for k, s in edits(codec.sr, codec.spf).items()},
            }
        )
        lr = np.concatenate([st["vocals"] + 0.6 * st["drums"], st["bass"] + st["other"] + 0.4 * st["drums"]])
        stereo.append({k: shaped_edit(codec, lr, s) for k, s in stereo_edits(codec.sr, codec.spf).items()})
        print(name, "done", flush=True)
    result = {
        "tracks": [d.name for d in dirs],
        "seconds": a.seconds,
        "sample_rate": codec.sr,
        "mono": mean_rows(mono),
        "stereo": mean_rows(stereo),
        "loudness": loudness_errors(codec, [s["mixture"] for s in stems.values()], (-14.0, -23.0)),
    }
    _write(result, a.out)


def _write(result: dict, out: str | None) -> None:
    text = json.dumps(result, indent=1)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()
