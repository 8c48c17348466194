"""Benchmark ``lincae encode`` against the bare forward pass and ``linear-cae``: ratios measured in one run.

1. end-to-end library throughput (``encode_files``: probe, stream, resample, batch, stitch, write)
   with the defaults (``--batch-size auto``, channels-last on CPU) and with the previous defaults
   (batch 8, contiguous), vs the model's own forward throughput on exactly the same batches, and
   the time the model was busy during the encode (``EncodeSummary.model_seconds``; target >= 0.9:
   audio loading hidden behind compute);
2. vs the reference ``linear-cae`` API (``linear_cae.Autoencoder.encode``) on the same files, with
   the same weights, window and overlap, loading each file with soundfile + soxr as a user would
   (target >= 1.3x), and the latents of both agreeing;
3. peak RSS of encoding one long (default 1-hour) file vs a 1-minute file, each in a fresh
   subprocess (bounded: the two should be about equal).

Usage::

    python scripts/bench_encode.py --preset tiny --out bench_encode.json

The "model busy" figure used to print 0.000: it monkeypatched ``forward_segments`` in a module
namespace the runner no longer looked it up in, so the timed wrapper was never called. The
library now times its own forward passes (``EncodeSummary.model_seconds``).
"""

from __future__ import annotations

import argparse
import dataclasses
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

from lincae_core.audio import load_audio
from lincae_core.checkpoint import model_id
from lincae_core.config import InferenceConfig, ModelConfig, get_preset
from lincae_core.device import resolve_device
from lincae_core.discovery import discover
from lincae_core.encoding.forward import forward_segments
from lincae_core.encoding.job import encode_files
from lincae_core.encoding.schedule import block_schedule, blocks_of
from lincae_core.encoding.settings import EncodeSettings
from lincae_core.nn.model import LinCAE
from lincae_core.release import reference_kwargs
from lincae_core.store import LatentStore
from lincae_core.windowing import crossfade_regions, plan_windows, ramp_weights, window_span

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

    frontend, generator = reference_kwargs(cfg)
    torch.manual_seed(0)
    ref = Autoencoder(frontend, generator, {}, scale_factor=1.0, mixed_precision=amp)
    with torch.no_grad():
        for p in ref.generator.parameters():  # zero-initialised layers too: non-trivial latents
            p.add_(0.05 * torch.randn_like(p))
    ours = LinCAE(cfg)
    ours.load_state_dict(ref.generator.state_dict(), strict=True)
    ours.model_id = model_id(ours.state_dict(), cfg)  # type: ignore[assignment]
    return ours.to(device).eval(), ref.to(device).eval()


def time_e2e(
    lib: Path, out: Path, model: LinCAE, inference: InferenceConfig, settings: EncodeSettings
) -> tuple[float, tuple[float, float, int]]:
    """Wall seconds of one ``encode_files`` call on a fresh store; (audio s, model-busy s, batch).

    The model-busy time is the time the library spent inside the forward passes *during* this
    call (``EncodeSummary.model_seconds``), so ``busy / wall`` measures how well loading hides
    behind compute with the machine's noise hitting both alike.
    """
    t0 = time.perf_counter()
    summary = encode_files(discover(lib), out, model, inference, settings)
    dt = time.perf_counter() - t0
    return dt, (summary.audio_seconds, summary.model_seconds, summary.batch_size)


def batch_shapes(store: LatentStore, cfg: ModelConfig) -> list[tuple[int, int]]:
    """Shapes ``(N, L)`` of the forward passes the encode of ``store`` ran (its recorded batch size)."""
    enc = store.encoding or {}
    window, overlap = enc["window_frames"], enc["overlap_frames"]
    frames = store.table()["frames"]
    pending = np.ones(store.n_tracks, bool)
    shapes = []
    for b in blocks_of(range(store.n_tracks)):
        s = block_schedule(b, frames, window, overlap, store.channels, int(enc["batch_size"]), pending)
        for batch, length in zip(s.batches, s.lengths, strict=True):
            a, e = window_span(0, length, cfg)
            shapes.append((len(batch), e - a))
    return shapes


def time_forward(
    model: LinCAE, shapes: list[tuple[int, int]], amp: bool, channels_last: bool
) -> tuple[float, None]:
    """Seconds the model alone takes for the batches the encode ran (same shapes, same count)."""
    data = {sh: np.random.default_rng(0).standard_normal(sh).astype(np.float32) * 0.1 for sh in set(shapes)}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.encoder.to(memory_format=fmt)  # type: ignore[call-overload]
    _sync(model)
    t0 = time.perf_counter()
    for sh in shapes:
        forward_segments(model, data[sh], amp, channels_last)
    _sync(model)
    dt = time.perf_counter() - t0
    model.encoder.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return dt, None


def _sync(model: LinCAE) -> None:
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()


def reference_encode(
    ref: Any,
    files: list[Path],
    cfg: ModelConfig,
    inference: InferenceConfig,
    device: torch.device,
    batch_size: int,
) -> tuple[float, list[torch.Tensor]]:
    """What a user of linear-cae does: load + resample each file, ``encode`` it in chunks."""
    window, overlap = inference.frames(cfg)
    a, b = window_span(0, window, cfg)
    chunk, step = b - a, (window - overlap) * cfg.samples_per_frame
    ref.max_chunk_size, ref.max_batch_size = chunk, batch_size
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


def agreement(
    store: LatentStore,
    keys: list[str],
    ref_out: list[torch.Tensor],
    inference: InferenceConfig,
    cfg: ModelConfig,
) -> dict[str, float]:
    """Max |ours - reference| over the frames where one window alone makes our latent."""
    window, overlap = inference.frames(cfg)
    worst, frames_compared = 0.0, 0
    for key, zr in zip(keys, ref_out, strict=True):
        z = store.read_track(key)[:, 0, :].T.astype(np.float32)  # [D, Z]
        plan = plan_windows(z.shape[-1], window, overlap)
        regions = crossfade_regions(plan, overlap)
        chunks = zr[0].numpy() if zr.dim() == 4 else zr.numpy()  # [n, D, W]
        for k, (s, e) in enumerate(plan[:-1] if len(plan) > 1 else plan):
            w = ramp_weights(regions, k, s, e - s)
            sel = np.nonzero(w == 1.0)[0]
            zk = chunks[k][:, : e - s]
            worst = max(worst, float(np.abs(z[:, s + sel] - zk[:, sel]).max()))
            frames_compared += sel.size
    return {"max_abs_diff": worst, "frames_compared": frames_compared}


_RSS_CHILD = """
import json, re, resource, sys, tempfile, torch
from lincae_core.config import InferenceConfig, get_preset
from lincae_core.discovery import discover
from lincae_core.encoding.job import encode_files
from lincae_core.encoding.settings import EncodeSettings
from lincae_core.nn.model import LinCAE

def status(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

torch.manual_seed(0)
model = LinCAE(get_preset(sys.argv[2])).eval(); model.model_id = "bench"
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
with tempfile.TemporaryDirectory() as d:
    s = encode_files(discover(sys.argv[1]), d + "/s.zarr", model,
                     InferenceConfig(batch_size=sys.argv[3] if sys.argv[3] == "auto" else int(sys.argv[3])),
                     EncodeSettings(workers=2))
print(json.dumps({"before_mb": before, "peak_mb": status("VmHWM"), "audio_s": s.audio_seconds,
                  "wall_s": s.wall_seconds}))
"""


def peak_rss(path: Path, preset: str, batch: int | str) -> dict[str, float]:
    """Peak RSS of a fresh process encoding one file (MB)."""
    res = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(path), preset, str(batch)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


VARIANTS = {  # name: (batch size, channels_last, parallel_forward); "default": what `lincae encode` does
    "default": ("auto", None, None),
    "serial": ("auto", True, False),  # batch auto + channels-last, one pass at a time
    "b8": (8, False, False),  # the defaults before batch auto
    "b8_cl": (8, True, False),
}


def run_scenario(
    name: str,
    lib: Path,
    tmp: Path,
    ours: LinCAE,
    ref: Any,
    inference: InferenceConfig,
    a: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """Interleaved timings of one library: lincae (defaults and previous defaults), forward, reference."""
    cfg, amp = ours.config, device.type == "cuda"
    files = sorted(lib.iterdir())
    variants = {k: VARIANTS[k] for k in a.variants.split(",")}
    t: dict[str, list[float]] = {k: [] for k in (*variants, "forward", "reference")}
    cpu: dict[str, list[float]] = {k: [] for k in t}
    busy_frac: dict[str, list[float]] = {k: [] for k in variants}
    batch: dict[str, int] = {}

    def timed(key: str, fn: Any, *args: Any) -> Any:
        c0 = time.process_time()
        dt, out = fn(*args)
        t[key].append(dt)
        cpu[key].append(time.process_time() - c0)
        return out

    for r in range(a.repeats):  # interleaved, so that machine noise hits all alike
        for key, (bs, cl, par) in variants.items():
            settings = EncodeSettings(
                dtype="float32", workers=a.workers, channels_last=cl, parallel_forward=par
            )
            inf = dataclasses.replace(inference, batch_size=bs)
            audio_s, busy, batch[key] = timed(
                key, time_e2e, lib, tmp / f"{name}-{key}-{r}.zarr", ours, inf, settings
            )
            busy_frac[key].append(busy / t[key][-1])
        first = next(iter(variants))
        store = LatentStore.open(tmp / f"{name}-{first}-{r}.zarr")
        shapes = batch_shapes(store, cfg)
        timed("forward", time_forward, ours, shapes, amp, bool(store.encoding.get("channels_last")))
        ref_out = timed("reference", reference_encode, ref, files, cfg, inference, device, a.ref_batch_size)
    best = {k: min(v) for k, v in t.items()}
    res: dict[str, Any] = {
        "files": len(files),
        "audio_s": audio_s,
        "batches": len(shapes),
        "batch_size": batch,
        "x_realtime": {k: audio_s / v for k, v in best.items()},
        "x_realtime_median": {k: audio_s / float(np.median(v)) for k, v in t.items()},
        "ratio_vs_reference": {k: best["reference"] / best[k] for k in variants},
        "ratio_vs_reference_median": {
            k: float(np.median(t["reference"]) / np.median(t[k])) for k in variants
        },
        f"ratio_{first}_vs_forward": best["forward"] / best[first],
        "model_busy_fraction": {k: max(v) for k, v in busy_frac.items()},
        "timings_s": t,
        "cpu_s": cpu,
        "cpu_ratio_reference_vs": {k: min(cpu["reference"]) / min(cpu[k]) for k in variants},
    }
    if ref_out[0].dim() == 4:  # chunked by the reference: compare window by window
        res["agreement"] = agreement(store, [f.stem for f in files], ref_out, inference, cfg)
    else:  # one chunk per clip: give the reference our padded window, compare everything
        res["agreement"] = clip_agreement(store, files[0], ref, cfg, device)
    return res


def clip_agreement(
    store: LatentStore, path: Path, ref: Any, cfg: ModelConfig, device: torch.device
) -> dict[str, float]:
    """Max |ours - reference| for a one-window clip, the reference fed the same padded audio."""
    z = store.read_track(path.stem)[:, 0, :].T  # [D, Z]
    x = load_audio(path, cfg.sample_rate)
    a, b = window_span(0, z.shape[-1], cfg)
    x = np.pad(x, ((0, 0), (0, b - a - x.shape[-1])))
    with torch.no_grad():
        zr = ref.encode(torch.from_numpy(x).to(device)).float().cpu().numpy()[0]
    return {"max_abs_diff": float(np.abs(z - zr).max()), "frames_compared": int(z.shape[-1])}


def print_scenario(name: str, r: dict[str, Any], device: torch.device) -> None:
    """One block of the printed table."""
    x, xm = r["x_realtime"], r["x_realtime_median"]
    first = next(iter(r["batch_size"]))
    print(
        f"[{name}] {r['files']} files, {r['audio_s'] / 60:.1f} min of audio on {device}, "
        f"{r['batches']} batches ({first})"
    )
    for k, ratio in r["ratio_vs_reference"].items():
        print(
            f"  lincae {k:8s} (batch {r['batch_size'][k]:>3}): {x[k]:6.1f}x real time "
            f"(median {xm[k]:6.1f}); "
            f"vs linear-cae {ratio:.2f}x (median {r['ratio_vs_reference_median'][k]:.2f}x; CPU time "
            f"{r['cpu_ratio_reference_vs'][k]:.2f}x); model busy {r['model_busy_fraction'][k]:.3f}"
        )
    print(
        f"  linear-cae: {x['reference']:.1f}x real time; forward alone on lincae {first}'s batches: "
        f"{x['forward']:.1f}x (e2e / forward = {r[f'ratio_{first}_vs_forward']:.3f}; target >= 0.9)"
    )
    ag = r["agreement"]
    print(f"  latents vs linear-cae: max |diff| {ag['max_abs_diff']:.2e} over {ag['frames_compared']} frames")


def make_libraries(root: Path, a: argparse.Namespace) -> dict[str, Path]:
    """'songs': a few long files (chunked by both APIs); 'clips': many short equal-length files."""
    libs = {"songs": root / "songs", "clips": root / "clips"}
    for lib in libs.values():
        lib.mkdir()
    for i in range(a.files):
        sf.write(libs["songs"] / f"s{i:03d}.flac", make_signal(a.rate, a.seconds, seed=i), a.rate)
    for i in range(a.clips):
        sf.write(libs["clips"] / f"c{i:03d}.flac", make_signal(a.rate, a.clip_seconds, seed=1000 + i), a.rate)
    return libs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--files", type=int, default=6, help="number of long files ('songs')")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each long file")
    p.add_argument("--clips", type=int, default=48, help="number of short files ('clips')")
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--rate", type=int, default=44100, help="sample rate of the library files")
    p.add_argument("--ref-batch-size", type=int, default=8, help="linear-cae's max_batch_size")
    p.add_argument(
        "--variants",
        default="default,serial,b8",
        help=f"lincae settings to time (of {', '.join(VARIANTS)}); the first is compared "
        "with the forward pass alone and with linear-cae's latents",
    )
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
    torch.set_grad_enabled(False)
    ours, ref = build_models(cfg, device, device.type == "cuda")
    inference = InferenceConfig(window_s=a.window, overlap_s=a.overlap)
    result: dict[str, Any] = {
        "preset": a.preset,
        "device": str(device),
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "args": {k: str(v) for k, v in vars(a).items()},
    }
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        libs = make_libraries(tmp, a)
        window = window_span(0, inference.frames(cfg)[0], cfg)[1]
        forward_segments(ours, np.zeros((2, window), np.float32), device.type == "cuda")  # warm-up
        for name, lib in libs.items():
            result[name] = run_scenario(name, lib, tmp, ours, ref, inference, a, device)
            print_scenario(name, result[name], device)
        if a.long_minutes > 0:
            result["rss"] = measure_rss(tmp, a)
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


def measure_rss(tmp: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of encoding a long file and a 1-minute file, each in a fresh process."""
    write_long(tmp / "long.wav", a.rate, a.long_minutes * 60)
    write_long(tmp / "short.wav", a.rate, 60)
    long_, short = (peak_rss(tmp / f, a.preset, "auto") for f in ("long.wav", "short.wav"))
    print(
        f"peak RSS: {a.long_minutes:.0f}-min file {long_['peak_mb']:.0f} MB, 1-min file "
        f"{short['peak_mb']:.0f} MB (RSS before encoding {long_['before_mb']:.0f} MB; the long file "
        f"at {long_['audio_s'] / long_['wall_s']:.1f}x real time)"
    )
    return {"long_minutes": a.long_minutes, "long": long_, "one_minute": short}


if __name__ == "__main__":
    main()
