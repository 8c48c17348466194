"""The main job end to end on a small stems library (``lincae demo``).

By default the library is the held-out music excerpt shipped in ``lincae_core/demo_music`` (3
songs x 10 s, rendered with a soundfont that no training corpus used; ``provenance.json``), cut
to ``seconds``; ``library="synthetic"`` builds seeded sine-and-click stems instead. Each song's
stems (bass, drums, other, vocals) are resampled to the model's rate and their exact float32 sum
is the mixture. Every stem folder is encoded into a latent store, then the job works on the stored
latents only:

- separation by latent arithmetic (arXiv:2510.23530, Sec. 4.5): vocals = mixture - (bass + drums + other);
- a latent-domain remix (additivity, Eq. 2): sum_i g_i z_i;
- a gain change (homogeneity, Eq. 1): a * z_mixture;

decodes the results and scores each against its audio-domain equivalent with the paper's
metrics (SNR, SI-SDR, multi-scale mel distance).
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from lincae_core import ops
from lincae_core.audio import load_audio
from lincae_core.config import InferenceConfig
from lincae_core.decoding import decode_store
from lincae_core.discovery import discover
from lincae_core.encoding.job import EncodeSettings, encode_files
from lincae_core.errors import ConfigError
from lincae_core.evaluation import metrics
from lincae_core.evaluation.listening import ListeningExample, ListeningTable, write_listening_page
from lincae_core.inference import decode, encode
from lincae_core.models import load_model
from lincae_core.publish import write_text_atomic

__all__ = ["DEMO_MUSIC", "STEMS", "run_demo", "synth_stems"]

#: The held-out music excerpt shipped with the package (``<song>/<stem>.flac``, provenance.json).
DEMO_MUSIC = Path(__file__).resolve().parent / "demo_music"
LIBRARIES = ("music", "synthetic")

STEMS = ("bass", "drums", "other", "vocals")
REMIX_GAINS = {"bass": 1.0, "drums": 0.8, "other": 1.0, "vocals": 0.5}
GAIN_DB = -6.0


def _note(f0: float, t: np.ndarray, harmonics: int, decay: float) -> np.ndarray:
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h**1.5 for h in range(1, harmonics + 1))
    return x * np.exp(-decay * t)


def synth_stems(sample_rate: int, seconds: float, seed: int) -> dict[str, np.ndarray]:
    """Synthesise four seeded stems (bass, drums, other, vocals), float32 mono."""
    rng = np.random.default_rng(seed)
    n = int(sample_rate * seconds)
    beat = 60.0 / rng.uniform(90, 130)
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    prog = rng.choice([[0, 7, 9, 5], [0, 5, 7, 5], [0, 3, 10, 7]])
    stems = {k: np.zeros(n) for k in STEMS}
    for i, start in enumerate(np.arange(0, seconds, beat)):
        s = int(start * sample_rate)
        t = np.arange(min(int(beat * sample_rate), n - s)) / sample_rate
        chord = root * 2 ** (prog[(i // 4) % 4] / 12)
        stems["bass"][s : s + t.size] += _note(chord, t, 4, 3.0)
        kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * t)) * t) * np.exp(-12 * t)
        hat = rng.standard_normal(t.size) * np.exp(-60 * t) * 0.3
        stems["drums"][s : s + t.size] += (
            kick if i % 2 == 0 else rng.standard_normal(t.size) * np.exp(-20 * t) * 0.5
        ) + hat
        for iv in (12, 16, 19):
            stems["other"][s : s + t.size] += 0.4 * _note(chord * 2 ** (iv / 12), t, 3, 1.5)
    t = np.arange(n) / sample_rate
    f0 = root * 4 * 2 ** (rng.choice([0, 3, 5, 7], size=n // sample_rate + 1)[(t).astype(int)] / 12)
    phase = 2 * np.cumsum(np.pi * f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / sample_rate
    voice = sum(np.sin(h * phase) * np.exp(-((h * f0 - 700) ** 2) / 2e5) for h in range(1, 12))
    stems["vocals"] = voice * (0.5 + 0.5 * np.sin(2 * np.pi * t / (4 * beat)) ** 2)
    return {k: (0.2 * v / (np.abs(v).max() + 1e-9)).astype(np.float32) for k, v in stems.items()}


def _total(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """``a + b + c + ...`` left to right (what ``sum`` computes, typed as an array)."""
    return functools.reduce(operator.add, arrays)


def _music_stems(song: Path, sample_rate: int, seconds: float) -> dict[str, np.ndarray]:
    """The four stems of a shipped song, mono at ``sample_rate``, cut to ``seconds``."""
    n = round(seconds * sample_rate)
    return {k: load_audio(song / f"{k}.flac", sample_rate, "mono")[0][:n] for k in STEMS}


def _build_library(
    lib: Path, sample_rate: int, tracks: int, seconds: float, library: str = "music"
) -> dict[str, dict[str, np.ndarray]]:
    if library not in LIBRARIES:
        raise ConfigError(f"Expected library 'music' or 'synthetic'. Got {library!r} instead.")
    songs = sorted(p for p in DEMO_MUSIC.iterdir() if p.is_dir()) if library == "music" else []
    if library == "music" and tracks > len(songs):
        raise ConfigError(
            f"Expected at most {len(songs)} tracks with the music library (the shipped excerpt). "
            f"Got {tracks}; use library 'synthetic' for more."
        )
    audio: dict[str, dict[str, np.ndarray]] = {}
    for i in range(tracks):
        if library == "music":
            name = songs[i].name
            stems = _music_stems(songs[i], sample_rate, seconds)
        else:
            name = f"song{i:02d}"
            stems = synth_stems(sample_rate, seconds, seed=i)
        stems["mixture"] = _total(stems[k] for k in STEMS).astype(np.float32)
        for kind, x in stems.items():
            (lib / kind).mkdir(parents=True, exist_ok=True)
            sf.write(lib / kind / f"{name}.wav", x, sample_rate, subtype="FLOAT")
        audio[name] = stems
    return audio


def _scores(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float]:
    e, r = torch.from_numpy(estimate)[None], torch.from_numpy(reference)[None]
    return {
        "snr_db": float(metrics.snr(e, r)[0]),
        "si_sdr_db": float(metrics.si_sdr(e, r)[0]),
        "mss": float(metrics.mss_distance(e, r, sample_rate)[0]),
    }


def _read_dir(path: Path) -> dict[str, np.ndarray]:
    return {f.stem: sf.read(f, dtype="float32")[0] for f in sorted(path.glob("*.wav"))}


def run_demo(
    workdir: str | Path,
    checkpoint: str | Path | None = None,
    tracks: int = 3,
    seconds: float = 8.0,
    log: Callable[[str], None] = lambda s: None,
    device: str = "auto",
    library: str = "music",
) -> dict[str, Any]:
    """Run the whole main job in ``workdir`` and return what happened (JSON-ready).

    ``library``: ``"music"`` (the shipped held-out excerpt, at most 3 tracks of up to 10 s) or
    ``"synthetic"`` (seeded sine-and-click stems, any number and length).
    """
    work = Path(workdir)
    model = load_model(checkpoint, device)
    rate = model.config.sample_rate
    inference = InferenceConfig(steps=model.recommended_steps)
    log(
        f"model {(model.model_id or '')[:12]} ({model.config.name}, {rate} Hz)"
        + (" -- UNTRAINED fallback: metrics are not meaningful" if model.card.get("untrained") else "")
    )
    audio = _build_library(work / "library", rate, tracks, seconds, library)
    if library == "music":
        log(
            f"library: {tracks} songs x {seconds:g} s of the shipped music excerpt, HELD OUT: rendered "
            "with a soundfont no training corpus used (lincae_core/demo_music/provenance.json)"
        )
    stores = {}
    t0 = time.perf_counter()
    for kind in ("mixture", *STEMS):
        stores[kind] = work / f"{kind}.zarr"
        encode_files(
            discover(work / "library" / kind),
            stores[kind],
            model,
            inference,
            EncodeSettings(dtype="float32", overwrite=True, workers=1),
        )
    encode_s = time.perf_counter() - t0
    log(f"encoded {tracks} tracks x 5 stores in {encode_s:.1f} s")
    t0 = time.perf_counter()
    replace_outputs = ops.OpOptions(overwrite=True)
    ops.extract_store(
        stores["mixture"],
        [stores[k] for k in STEMS if k != "vocals"],
        work / "vocals_est.zarr",
        options=replace_outputs,
    )
    ops.mix_stores(
        [stores[k] for k in STEMS],
        work / "remix.zarr",
        [REMIX_GAINS[k] for k in STEMS],
        options=replace_outputs,
    )
    ops.gain_store(
        stores["mixture"], work / "mixture_gain.zarr", ops.db_to_amplitude(GAIN_DB), options=replace_outputs
    )
    ops_s = time.perf_counter() - t0
    log(f"latent ops (extract, mix, gain) in {ops_s:.2f} s, no decoding or re-encoding")
    out = {}
    for name in ("vocals_est", "remix", "mixture_gain", "vocals", "mixture"):
        decode_store(
            work / f"{name}.zarr",
            work / "decoded" / name,
            model,
            inference=inference,
            subtype="FLOAT",
            overwrite=True,  # the demo owns its folder: a re-run replaces what it wrote
        )
        out[name] = _read_dir(work / "decoded" / name)
    a = ops.db_to_amplitude(GAIN_DB)
    table = _score_rows(model, inference, audio, out, a)
    first = next(iter(audio))
    remix = _total(REMIX_GAINS[k] * audio[first][k] for k in STEMS)
    compare = {  # side by side, for listening (first track)
        "input_mixture": audio[first]["mixture"],
        "reconstruction": out["mixture"][first],
        "audio_remix": remix,
        "latent_remix": out["remix"][first],
        "true_vocals": audio[first]["vocals"],
        "latent_vocals": out["vocals_est"][first],
        "audio_gain": a * audio[first]["mixture"],
        "latent_gain": out["mixture_gain"][first],
    }
    (work / "compare").mkdir(parents=True, exist_ok=True)
    for name, x in compare.items():
        sf.write(work / "compare" / f"{name}.wav", x.astype(np.float32), rate, subtype="FLOAT")
    png = _spectrograms(work / "spectrograms.png", compare, rate, first)
    log(f"side-by-side WAVs in {work / 'compare'}; spectrograms in {png}")
    result = {
        "workdir": str(work),
        "model_id": model.model_id,
        "untrained": bool(model.card.get("untrained")),
        "library": library,
        "held_out": library == "music",
        "tracks": tracks,
        "seconds": len(next(iter(audio.values()))["mixture"]) / rate,
        "encode_s": encode_s,
        "latent_ops_s": ops_s,
        "metrics": table,
        "decode_steps": inference.steps,
        "compare_dir": str(work / "compare"),
        "spectrograms": str(png),
    }
    result["report"] = str(_write_reports(work, result, first, png.name))
    return result


_COMPARE_ROWS = {  # page row: (audio-domain file, latent-domain file) in compare/
    "reconstruction: input vs Dec(Enc(mixture))": ("input_mixture", "reconstruction"),
    "remix: audio sum vs latent sum": ("audio_remix", "latent_remix"),
    "separation: true vocals vs mixture - accompaniment on latents": ("true_vocals", "latent_vocals"),
    f"gain {GAIN_DB:+.0f} dB: a*x vs latent a*z": ("audio_gain", "latent_gain"),
}


def _write_reports(work: Path, result: dict[str, Any], track: str, png: str) -> Path:
    """``report.md`` (the metrics table) and ``report.html`` (the listening page) in ``work``."""
    head = ["comparison", "SNR dB", "SI-SDR dB", "MSS", "ceiling MSS"]
    rows = [
        [row, m["snr_db"], m["si_sdr_db"], m["mss"], m.get("ceiling_mss")]
        for row, m in result["metrics"].items()
    ]
    what = (
        f"{result['tracks']} songs x {result['seconds']:g} s, "
        + ("the shipped held-out music excerpt" if result["held_out"] else "synthetic stems")
        + f"; model {str(result['model_id'])[:12]}, decoded with {result['decode_steps']} step(s)"
    )
    md = [
        "# lincae demo",
        "",
        what + ". 'ceiling' is the model on the reference itself, Dec(Enc(ref)) vs ref.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    md += [f"| {r[0]} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in r[1:]) + " |" for r in rows]
    md += ["", f"Listening page: report.html (examples of {track}); spectrograms: {png}", ""]
    write_text_atomic(work / "report.md", "\n".join(md))
    return write_listening_page(
        work / "report.html",
        "lincae demo: latent-domain edits against their audio-domain equivalents",
        intro=[what + ".", "Each latent-domain edit ran on stored latents only, then was decoded once."],
        tables=[ListeningTable("Mean over songs ('ceiling': Dec(Enc(ref)) vs ref)", head, rows)],
        figures=[png],
        examples=[
            ListeningExample(
                f"Example: {track}",
                ["audio domain (reference)", "latent domain (lincae)"],
                {
                    row: {
                        "audio domain (reference)": f"compare/{a}.wav",
                        "latent domain (lincae)": f"compare/{b}.wav",
                    }
                    for row, (a, b) in _COMPARE_ROWS.items()
                },
            )
        ],
    )


def _ceiling(model: Any, x: np.ndarray, inference: InferenceConfig, rate: int) -> dict[str, float]:
    """The model's own fidelity on ``x``: Dec(Enc(x)) against x (what no latent edit can beat)."""
    y = decode(
        model, encode(model, torch.from_numpy(x), inference), num_samples=x.shape[-1], inference=inference
    )
    return _scores(y.numpy(), x, rate)


def _score_rows(
    model: Any,
    inference: InferenceConfig,
    audio: dict[str, dict[str, np.ndarray]],
    out: dict[str, dict[str, np.ndarray]],
    a: float,
) -> dict[str, dict[str, float]]:
    """Each latent-domain result against its audio-domain equivalent, with the model's ceiling on
    that equivalent (``ceiling_*``: Dec(Enc(reference)) against the reference) where it is audio."""
    rate = model.config.sample_rate
    rows: dict[str, list[dict[str, float]]] = {}
    for key, stems in audio.items():
        remix = _total(REMIX_GAINS[k] * stems[k] for k in STEMS)
        cases = [
            (
                "separation (mixture - accompaniment) vs true vocals",
                out["vocals_est"][key],
                stems["vocals"],
                True,
            ),
            ("separation vs Dec(Enc(vocals))", out["vocals_est"][key], out["vocals"][key], False),
            ("latent remix vs audio remix", out["remix"][key], remix, True),
            (
                f"latent gain {GAIN_DB:+.0f} dB vs a*Dec(z)",
                out["mixture_gain"][key],
                a * out["mixture"][key],
                False,
            ),
            (f"latent gain {GAIN_DB:+.0f} dB vs a*x", out["mixture_gain"][key], a * stems["mixture"], True),
            ("reconstruction Dec(Enc(mixture)) vs mixture", out["mixture"][key], stems["mixture"], False),
        ]
        for row, est, ref, audio_ref in cases:
            scores = _scores(est, ref, rate)
            if audio_ref:
                scores.update({f"ceiling_{k}": v for k, v in _ceiling(model, ref, inference, rate).items()})
            rows.setdefault(row, []).append(scores)
    return {row: {m: float(np.mean([s[m] for s in vals])) for m in vals[0]} for row, vals in rows.items()}


def _spectrograms(path: Path, signals: dict[str, np.ndarray], rate: int, title: str) -> Path:
    """One PNG of log-magnitude spectrograms, two panels a row (audio domain | latent domain)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(signals)
    fig, axes = plt.subplots(
        len(names) // 2, 2, figsize=(11, 2.2 * len(names) // 2), sharex=True, sharey=True, squeeze=False
    )
    for ax, name in zip(axes.flat, names, strict=True):
        with np.errstate(divide="ignore"):  # silent bins: -inf dB, drawn at vmin (no warning)
            ax.specgram(signals[name] + 1e-9, NFFT=512, Fs=rate, noverlap=384, cmap="magma", vmin=-120)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_ylabel("Hz", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=8)
    fig.suptitle(f"lincae demo, {title}: audio-domain (left) vs latent-domain (right)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
