"""The CUDA encode path against CPU latents, and x-real-time of every preset on this device.

For each preset (``--presets``, default ``tiny small paper``; random weights, seed 0: the cost is
the architecture's, not the training's) it

1. writes a library of ``--files`` synthetic tracks of ``--seconds`` (tones and noise, seeded) at
   the preset's sample rate;
2. encodes it with the library's own encode path (``encode_files``: batch size ``auto``, float16
   autocast on CUDA) once on the CPU and once on ``--device``, into two real stores;
3. compares the latents: the largest absolute difference, and that difference in units of
   float16 storage precision at the latents' scale (``max|z_gpu - z_cpu| / spacing(max|z|)``);
4. times, on the device, the encode of the whole library (x-real-time = audio seconds / wall
   seconds of a second, warm encode into a fresh store) and ``inference.decode`` at 1 step and at
   ``--steps`` steps of every track's latents (with CUDA synchronised before each clock read).

It prints one line per preset and a Markdown table (device name included) ready for
docs/presets.md, and writes JSON (``--out``). Without a GPU, ``--device cpu`` runs the same
measurement on the CPU (a check of the script, not the CUDA figures).

Usage:  python scripts/bench_cuda.py --out bench_cuda.json [--presets tiny small paper]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lincae_core import inference  # noqa: E402
from lincae_core.checkpoint import model_id  # noqa: E402
from lincae_core.config import get_preset  # noqa: E402
from lincae_core.discovery import discover  # noqa: E402
from lincae_core.encoding.job import EncodeSettings, encode_files  # noqa: E402
from lincae_core.nn.model import LinCAE  # noqa: E402
from lincae_core.store import LatentStore  # noqa: E402


def synth_library(root: Path, rate: int, files: int, seconds: float) -> float:
    """Seeded tones + noise, one WAV a track; returns the total seconds of audio."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(files):
        f0 = 110.0 * 2 ** (i / 5)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / f"t{i:03d}.wav", x.astype(np.float32), rate)
    return files * seconds


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def encode_store(model: LinCAE, lib: Path, out: Path, amp: bool = True) -> tuple[float, Any]:
    """Encode ``lib`` into a fresh store ``out`` with the default settings; (wall s, summary)."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    settings = EncodeSettings(overwrite=True, amp=amp)
    summary = encode_files(discover(lib), out, model, settings=settings)
    return time.perf_counter() - t0, summary


def measure(name: str, device: str, work: Path, files: int, seconds: float, steps: int) -> dict[str, Any]:
    """Every figure of one preset (see the module docstring)."""
    torch.manual_seed(0)
    model = LinCAE(get_preset(name)).eval()
    model.model_id = model_id(model.state_dict(), model.config)
    rate = model.config.sample_rate
    audio_s = synth_library(work / name / "lib", rate, files, seconds)
    _, cpu_summary = encode_store(model, work / name / "lib", work / name / "cpu.zarr")
    model = model.to(device)
    encode_store(model, work / name / "lib", work / name / "warm.zarr")  # warm-up (cudnn, allocator)
    wall, summary = encode_store(model, work / name / "lib", work / name / "dev.zarr")
    # The same encode without float16 autocast (float32 on the device): what autocast costs.
    wall32, _ = encode_store(model, work / name / "lib", work / name / "dev32.zarr", amp=False)
    cpu, dev = LatentStore.open(work / name / "cpu.zarr"), LatentStore.open(work / name / "dev.zarr")
    dev32 = LatentStore.open(work / name / "dev32.zarr")
    diff = diff32 = scale = 0.0
    keys = dev.keys()
    for key in keys:
        a, b = cpu.read_track(key).astype(np.float32), dev.read_track(key).astype(np.float32)
        c = dev32.read_track(key).astype(np.float32)
        diff, scale = max(diff, float(np.abs(a - b).max())), max(scale, float(np.abs(a).max()))
        diff32 = max(diff32, float(np.abs(a - c).max()))
    ulp = float(np.spacing(np.float16(scale)))
    decode_xrt: dict[str, float] = {}
    zs = [
        torch.from_numpy(dev.read_track(k).astype(np.float32)).permute(1, 2, 0).to(device) for k in keys
    ]  # [C, D, Z]
    for half in (False, True):
        if half and not device.startswith("cuda"):
            continue
        for n_steps in sorted({1, steps}):
            label = f"{n_steps}{'-fp16' if half else ''}"
            try:
                with torch.autocast("cuda", dtype=torch.float16, enabled=half):
                    inference.decode(model, zs[0][:, :, :8], steps=n_steps)  # warm-up
                    sync(device)
                    t0 = time.perf_counter()
                    for k, z in zip(keys, zs, strict=True):
                        inference.decode(model, z, dev.track(k).samples, steps=n_steps)
                    sync(device)
                decode_xrt[label] = audio_s / (time.perf_counter() - t0)
            except Exception as exc:  # a figure that fails is reported, not fatal to the rest
                print(f"{name}: decode {label} failed: {exc!r}", flush=True)
    # The same latents decoded on the CPU and on the device (float32, 1 step, first 64 frames):
    # the decode noise is drawn on the CPU from per-window seeds, so only arithmetic differs.
    z0 = zs[0][:, :, :64]
    y_dev = inference.decode(model, z0, steps=1).float()
    y_cpu = inference.decode(model.to("cpu"), z0.cpu(), steps=1).float()
    model.to(device)
    err = float((y_dev - y_cpu).pow(2).mean() / y_cpu.pow(2).mean().clamp_min(1e-20))
    decode_snr_db = -10 * float(np.log10(max(err, 1e-30)))
    return {
        "preset": name,
        "device": device,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "audio_seconds": audio_s,
        "encode_wall_s": wall,
        "encode_xrt": audio_s / wall,
        "encode_batch_size": summary.batch_size,
        "encode_model_s": summary.model_seconds,
        "cpu_encode_xrt": audio_s / max(cpu_summary.wall_seconds, 1e-9),
        "max_abs_diff_vs_cpu": diff,
        "latent_scale": scale,
        "diff_in_float16_steps": diff / ulp,
        "encode_fp32_xrt": audio_s / wall32,
        "max_abs_diff_fp32_vs_cpu": diff32,
        "diff_fp32_in_float16_steps": diff32 / ulp,
        "decode_xrt": decode_xrt,
        "decode_dev_vs_cpu_snr_db": decode_snr_db,
    }


def xrt(row: dict[str, Any], steps: str) -> str:
    """``"A× / B×"``: float32 and float16-autocast decode x-real-time (``–`` where none)."""
    d = row["decode_xrt"]
    return " / ".join(f"{d[k]:.0f}×" if k in d else "–" for k in (steps, f"{steps}-fp16"))


def main() -> None:
    """Measure every preset on the device, print the lines and the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=3, help="Decode steps besides 1 (the card's default: 3).")
    p.add_argument("--out", default="bench_cuda.json")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or --device cpu to check the script")
    dev_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    work = Path(tempfile.mkdtemp(prefix="lincae-cuda-"))
    rows = []
    try:
        for name in args.presets:
            try:
                r = measure(name, args.device, work, args.files, args.seconds, args.steps)
            except Exception:  # one preset failing still leaves the others' figures
                traceback.print_exc()
                continue
            rows.append(r)
            Path(args.out).write_text(
                json.dumps({"device": dev_name, "torch": torch.__version__, "rows": rows}, indent=2)
            )
            dec = ", ".join(f"{v:.0f}x at {k} step(s)" for k, v in r["decode_xrt"].items())
            dec += f"; decode on {args.device} vs CPU {r['decode_dev_vs_cpu_snr_db']:.0f} dB SNR"
            print(
                f"{name}: encode {r['encode_xrt']:.0f}x real time (CPU {r['cpu_encode_xrt']:.0f}x, "
                f"batch {r['encode_batch_size']}), decode {dec}; max |z_dev - z_cpu| "
                f"{r['max_abs_diff_vs_cpu']:.2e} = {r['diff_in_float16_steps']:.1f} float16 steps; "
                f"float32 on the device {r['encode_fp32_xrt']:.0f}x real time, "
                f"{r['diff_fp32_in_float16_steps']:.1f} steps",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{dev_name}, torch {torch.__version__}, {args.files} tracks x {args.seconds:.0f} s, "
        "random weights:\n"
    )
    print(
        f"| preset | params | encode x-real-time (CPU, {os.cpu_count()} cores) "
        "| decode x-real-time, 1 step (float32 / float16) "
        f"| decode, {args.steps} steps (float32 / float16) "
        "| max abs diff vs CPU latents, float16 autocast / float32 "
        "| decode vs CPU |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['preset']}` | {r['params_m']:.1f} M | {r['encode_xrt']:.0f}× "
            f"({r['cpu_encode_xrt']:.0f}×) | "
            f"{xrt(r, '1')} | {xrt(r, str(args.steps))} | {r['max_abs_diff_vs_cpu']:.1e} "
            f"({r['diff_in_float16_steps']:.1f} float16 steps) / {r['max_abs_diff_fp32_vs_cpu']:.1e} "
            f"({r['diff_fp32_in_float16_steps']:.1f}) | "
            f"{r['decode_dev_vs_cpu_snr_db']:.0f} dB SNR |"
        )
    record = {"device": dev_name, "torch": torch.__version__, "rows": rows}
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
