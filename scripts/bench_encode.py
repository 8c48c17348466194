"""Benchmark ``lincae encode`` (design.md section 7): ratios measured in one run.

1. end-to-end library throughput (``encode_files``: probe, stream, resample, batch, stitch, write)
   vs the model's own forward throughput on exactly the same batches (target >= 0.9: audio
   loading hidden behind compute);
2. vs the reference ``linear-cae`` API (``linear_cae.Autoencoder.encode``) on the same files, with
   the same weights, window and overlap, loading each file with soundfile + soxr as a user would
   (target >= 1.3x), and the latents of both agreeing;
3. peak RSS of encoding one long (default 1-hour) file vs a 1-minute file, each in a fresh
   subprocess (bounded: the two should be about equal).

Usage::

    python scripts/bench_encode.py --preset tiny --out bench_encode.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from lincae_core.api import _ramp_weights, crossfade_regions, plan_windows, window_span
from lincae_core.audio import load_audio
from lincae_core.checkpoint import model_id
from lincae_core.config import InferenceConfig, ModelConfig, get_preset
from lincae_core.discovery import discover
from lincae_core.encode import EncodeSettings, encode_files, resolve_device
from lincae_core.encode_run import forward_segments
from lincae_core.encode_schedule import block_schedule, blocks_of
from lincae_core.model import LinCAE
from lincae_core.store import LatentStore

ROOT = Path(__file__).resolve().parents[1]


def make_signal(rate: int, seconds: float, seed: int) -> np.ndarray:
    """Seeded band-limited noise with a few tones (a stand-in for music), peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.05 * rng.standard_normal(t.shape)
    for f in rng.uniform(80, 2000, 4):
        x += 0.1 * np.sin(2 * np.pi * f * t)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def write_long(path: Path, rate: int, seconds: float, block_s: float = 60.0) -> None:
    """Write a long WAV block by block (bounded memory)."""
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        done = 0.0
        while done < seconds:
            n = min(block_s, seconds - done)
            f.write(make_signal(rate, n, seed=int(done)))
            done += n


def build_models(cfg: ModelConfig, device: torch.device, amp: bool) -> tuple[LinCAE, Any]:
    """Our model and the reference Autoencoder with the same random weights."""
    from linear_cae import Autoencoder

    generator = dict(
        base_channels=cfg.base_channels, layers_list=list(cfg.layers), multipliers_list=list(cfg.multipliers),
        attention_list=list(cfg.attention), freq_downsample_list=list(cfg.freq_downsample),
        layers_list_encoder=list(cfg.encoder_layers), attention_list_encoder=list(cfg.encoder_attention),
        bottleneck_base_channels=cfg.bottleneck_base_channels, bottleneck_channels=cfg.latent_dim,
        num_bottleneck_layers=cfg.num_bottleneck_layers, hop=cfg.hop, cond_channels=cfg.cond_channels,
        heads=cfg.heads,
    )
    frontend = dict(hop_size=cfg.hop, n_fft_factor=cfg.n_fft_factor, alpha_rescale=cfg.alpha,
                    beta_rescale=cfg.beta, sample_rate=cfg.sample_rate)
    torch.manual_seed(0)
    ref = Autoencoder(frontend, generator, {}, scale_factor=1.0, mixed_precision=amp)
    with torch.no_grad():
        for p in ref.generator.parameters():  # zero-initialised layers too: non-trivial latents
            p.add_(0.05 * torch.randn_like(p))
    ours = LinCAE(cfg)
    ours.load_state_dict(ref.generator.state_dict(), strict=True)
    ours.model_id = model_id(ours.state_dict(), cfg)  # type: ignore[assignment]
    return ours.to(device).eval(), ref.to(device).eval()


def time_e2e(lib: Path, out: Path, model: LinCAE, inference: InferenceConfig,
             settings: EncodeSettings) -> tuple[float, float]:
    """Wall seconds of one ``encode_files`` call on a fresh store, and the audio seconds."""
    t0 = time.perf_counter()
    summary = encode_files(discover(lib), out, model, inference, settings)  # ends with a .cpu() sync
    return time.perf_counter() - t0, summary.audio_seconds


def time_forward(store: LatentStore, model: LinCAE, inference: InferenceConfig, amp: bool) -> float:
    """Seconds the model alone takes for the batches the encode ran (same shapes, same count)."""
    cfg = model.config
    window, overlap = inference.frames(cfg)
    frames = store.table()["frames"]
    pending = np.ones(store.n_tracks, bool)
    shapes = []
    for b in blocks_of(range(store.n_tracks)):
        s = block_schedule(b, frames, window, overlap, store.channels, inference.batch_size, pending)
        for batch, length in zip(s.batches, s.lengths, strict=True):
            a, e = window_span(0, length, cfg)
            shapes.append((len(batch), e - a))
    data = {sh: np.random.default_rng(0).standard_normal(sh).astype(np.float32) * 0.1 for sh in set(shapes)}
    _sync(model)
    t0 = time.perf_counter()
    for sh in shapes:
        forward_segments(model, data[sh], amp)
    _sync(model)
    return time.perf_counter() - t0


def _sync(model: LinCAE) -> None:
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()


def reference_encode(ref: Any, files: list[Path], cfg: ModelConfig, inference: InferenceConfig,
                     device: torch.device) -> tuple[float, list[torch.Tensor]]:
    """What a user of linear-cae does: load + resample each file, ``encode`` it in chunks."""
    window, overlap = inference.frames(cfg)
    a, b = window_span(0, window, cfg)
    chunk, step = b - a, (window - overlap) * cfg.samples_per_frame
    ref.max_chunk_size, ref.max_batch_size = chunk, inference.batch_size
    ref.overlap_percentage = (chunk - step + 0.5) / chunk  # int(chunk * p) == chunk - step
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for f in files:
            x = torch.from_numpy(load_audio(f, cfg.sample_rate)).to(device)  # [1, T]
            out.append(ref.encode(x).float().cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def agreement(store: LatentStore, keys: list[str], ref_out: list[torch.Tensor],
              inference: InferenceConfig, cfg: ModelConfig) -> dict[str, float]:
    """Max |ours - reference| over the frames where one window alone makes our latent."""
    window, overlap = inference.frames(cfg)
    worst, frames_compared = 0.0, 0
    for key, zr in zip(keys, ref_out, strict=True):
        z = store.read_track(key)[:, 0, :].T.astype(np.float32)  # [D, Z]
        plan = plan_windows(z.shape[-1], window, overlap)
        regions = crossfade_regions(plan, overlap)
        chunks = zr[0].numpy() if zr.dim() == 4 else zr.numpy()  # [n, D, W]
        for k, (s, e) in enumerate(plan[:-1] if len(plan) > 1 else plan):
            w = _ramp_weights(regions, k, s, e - s)
            sel = np.nonzero(w == 1.0)[0]
            zk = chunks[k][:, : e - s]
            worst = max(worst, float(np.abs(z[:, s + sel] - zk[:, sel]).max()))
            frames_compared += sel.size
    return {"max_abs_diff": worst, "frames_compared": frames_compared}


_RSS_CHILD = """
import json, resource, sys, tempfile, torch
from lincae_core.config import InferenceConfig, get_preset
from lincae_core.discovery import discover
from lincae_core.encode import EncodeSettings, encode_files
from lincae_core.model import LinCAE
torch.manual_seed(0)
model = LinCAE(get_preset(sys.argv[2])).eval(); model.model_id = "bench"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory() as d:
    s = encode_files(discover(sys.argv[1]), d + "/s.zarr", model,
                     InferenceConfig(batch_size=int(sys.argv[3])), EncodeSettings(workers=2))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "peak_mb": after / 1024, "audio_s": s.audio_seconds,
                  "wall_s": s.wall_seconds}))
"""


def peak_rss(path: Path, preset: str, batch: int) -> dict[str, float]:
    """Peak RSS of a fresh process encoding one file (MB)."""
    res = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), preset, str(batch)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0, help="length of each library file")
    p.add_argument("--rate", type=int, default=44100, help="sample rate of the library files")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--overlap", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2, help="best of N for each timing")
    p.add_argument("--long-minutes", type=float, default=60.0, help="0 skips the RSS measurement")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()

    device = resolve_device(a.device)
    cfg = get_preset(a.preset)
    amp = device.type == "cuda"
    torch.set_grad_enabled(False)
    ours, ref = build_models(cfg, device, amp)
    inference = InferenceConfig(window_s=a.window, overlap_s=a.overlap, batch_size=a.batch_size)
    settings = EncodeSettings(dtype="float32", workers=a.workers)
    result: dict[str, Any] = {"preset": a.preset, "device": str(device), "host": platform.node(),
                              "torch_threads": torch.get_num_threads(), "args": {k: str(v) for k, v in vars(a).items()}}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        lib = tmp / "lib"
        lib.mkdir()
        for i in range(a.files):
            sf.write(lib / f"f{i:03d}.flac", make_signal(a.rate, a.seconds, seed=i), a.rate)
        files = sorted(lib.iterdir())
        forward_segments(ours, np.zeros((a.batch_size, window_span(0, inference.frames(cfg)[0], cfg)[1]),
                                        np.float32), amp)  # warm-up
        e2e, fwd, refs = [], [], []
        for r in range(a.repeats):  # interleaved, so that machine noise hits all three alike
            t, audio_s = time_e2e(lib, tmp / f"s{r}.zarr", ours, inference, settings)
            e2e.append(t)
            store = LatentStore.open(tmp / f"s{r}.zarr")
            fwd.append(time_forward(store, ours, inference, amp))
            t_ref, ref_out = reference_encode(ref, files, cfg, inference, device)
            refs.append(t_ref)
        agree = agreement(store, [f.stem for f in files], ref_out, inference, cfg)
        result.update({
            "audio_s": audio_s, "e2e_s": min(e2e), "forward_s": min(fwd), "reference_s": min(refs),
            "e2e_x_realtime": audio_s / min(e2e), "forward_x_realtime": audio_s / min(fwd),
            "reference_x_realtime": audio_s / min(refs),
            "ratio_e2e_vs_forward": min(fwd) / min(e2e), "ratio_e2e_vs_reference": min(refs) / min(e2e),
            "agreement": agree, "timings": {"e2e": e2e, "forward": fwd, "reference": refs},
        })
        print(f"audio {audio_s / 60:.1f} min on {device}: lincae {result['e2e_x_realtime']:.1f}x real time, "
              f"model forward alone {result['forward_x_realtime']:.1f}x, linear-cae "
              f"{result['reference_x_realtime']:.1f}x")
        print(f"ratio e2e / forward   = {result['ratio_e2e_vs_forward']:.3f}   (target >= 0.9)")
        print(f"ratio e2e / reference = {result['ratio_e2e_vs_reference']:.3f}   (target >= 1.3)")
        print(f"latents vs reference: max |diff| {agree['max_abs_diff']:.2e} over {agree['frames_compared']} frames")
        if a.long_minutes > 0:
            write_long(tmp / "long.wav", a.rate, a.long_minutes * 60)
            write_long(tmp / "short.wav", a.rate, 60)
            long_, short = peak_rss(tmp / "long.wav", a.preset, a.batch_size), peak_rss(tmp / "short.wav", a.preset, a.batch_size)
            result["rss"] = {"long_minutes": a.long_minutes, "long": long_, "one_minute": short}
            print(f"peak RSS: {a.long_minutes:.0f}-min file {long_['peak_mb']:.0f} MB, 1-min file "
                  f"{short['peak_mb']:.0f} MB (process before encoding {long_['before_mb']:.0f} MB; "
                  f"{long_['audio_s'] / long_['wall_s']:.1f}x real time)")
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
