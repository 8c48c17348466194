"""The figures of ``lincae eval``'s report: separation SI-SDR per stem and checkpoint, and the
example track's spectrograms (one separated stem next to its references)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lincae_core.evaluation.protocol import STEMS
from lincae_core.evaluation.result import EvalResult

__all__ = ["plot_separation", "plot_spectrograms"]


def plot_separation(result: EvalResult, path: Path) -> None:
    """Grouped bars: mean separation SI-SDR per stem, one bar per checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.models)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(STEMS), 3.5))
    for j, m in enumerate(result.models):
        mean = result.means("table1", m.name)
        vals = [mean.get(f"sep_{s}_si_sdr", np.nan) for s in STEMS]
        ax.bar(np.arange(len(STEMS)) + (j - (n - 1) / 2) * width, vals, width, label=m.name)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(np.arange(len(STEMS)), [s.capitalize() for s in STEMS])
    ax.set_ylabel("SI-SDR (dB) ↑")
    ax.set_title(f"Separation by latent arithmetic (mean of {len(result.stem_tracks)} tracks)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_spectrogram(x: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    """Return the dB magnitude ``[F, frames]`` of a Hann STFT with hop n_fft/4."""
    hop = n_fft // 4
    x = np.pad(x.astype(np.float64), (n_fft // 2, n_fft // 2))
    n = max(1 + (len(x) - n_fft) // hop, 1)
    frames = np.lib.stride_tricks.as_strided(x, (n, n_fft), (x.strides[0] * hop, x.strides[0]))
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
    return 20 * np.log10(mag + 1e-6)


def plot_spectrograms(result: EvalResult, path: Path, stem: str = "vocals") -> None:
    """One row per checkpoint: the stem, Dec(Enc(stem)) and the separated stem, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = (
        (f"stem_{stem}", f"{stem} (input stem s)"),
        (f"autoencoded_{stem}", "reference Dec(Enc(s))"),
        (f"separated_{stem}", "separated Dec(Enc(mix) − Enc(mix − s))"),
    )
    models = [m for m in result.models if m.name in result.example_audio]
    fig, axes = plt.subplots(len(models), 3, figsize=(11, 2.4 * len(models)), squeeze=False)
    for i, m in enumerate(models):
        audio, sr = result.example_audio[m.name], m.model.config.sample_rate
        score = result.table1[m.name][result.example_track or ""].get(f"sep_{stem}_si_sdr", np.nan)
        for j, (key, title) in enumerate(cols):
            spec = _log_spectrogram(audio[key])
            top = spec.max()
            axes[i, j].imshow(
                spec,
                origin="lower",
                aspect="auto",
                vmin=top - 80,
                vmax=top,
                cmap="magma",
                extent=(0, len(audio[key]) / sr, 0, sr / 2000),
            )
            if i == 0:
                axes[i, j].set_title(title, fontsize=9)
            if j == 2:
                axes[i, j].text(
                    0.01,
                    0.97,
                    f"SI-SDR {score:.1f} dB",
                    transform=axes[i, j].transAxes,
                    va="top",
                    fontsize=8,
                    color="w",
                )
            axes[i, j].set_xlabel("s", fontsize=7)
            axes[i, j].set_ylabel(f"{m.name}\nkHz" if j == 0 else "kHz", fontsize=7)
    fig.suptitle(f"{result.example_track}: {stem}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
