"""Start-up cost of every lincae command, in fresh processes, against a bare interpreter.

Each command runs ``--repeats`` times in a new process (interleaved with ``python -c pass``, so
that machine load hits both alike); the table gives the median wall time and the median excess
over the bare interpreter, and which heavy modules the command imported. Store commands run on a
small synthetic store; model commands are timed on ``--help`` only (their work is not start-up).

    python scripts/bench_startup.py [--repeats 5] [--out bench_startup.json]

Target (issue 27): at most 0.3 s above the bare interpreter for every store command.

It then measures the choice behind the latent operations' start-up: their block arithmetic
(float16 in, float32 arithmetic, float16 out: :mod:`lincae_core.ops.kernel`) in torch, which
costs torch's import, against the same arithmetic in numpy (bit-identical results, checked), and
prints the store size above which torch's import pays for itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lincae_core.store.synthetic import synthetic_store

_PROBE = """
import sys
from lincae_cli.main import cli
try:
    cli(sys.argv[1:], prog_name="lincae", standalone_mode=False)
except SystemExit:
    pass
except Exception as exc:
    print("error:", exc, file=sys.stderr)
heavy = ("torch", "zarr", "numcodecs", "scipy", "tqdm", "numpy")
print("MODULES", ",".join(m for m in heavy if m in sys.modules), file=sys.stderr)
"""

CASES: list[tuple[str, list[str]]] = [
    ("--version", ["--version"]),
    ("--help", ["--help"]),
    ("completion", []),  # _LINCAE_COMPLETE env: completes "lincae en"
    ("ls", ["ls", "a.zarr"]),
    ("ls --json", ["ls", "a.zarr", "--json"]),
    ("info STORE", ["info", "a.zarr"]),
    ("stats", ["stats", "a.zarr"]),
    ("select", ["select", "a.zarr", "-o", "OUT", "--start", "0", "--duration", "1"]),
    ("gain", ["gain", "a.zarr", "--gain", "0.5", "-o", "OUT"]),
    ("mix", ["mix", "a.zarr", "b.zarr", "-o", "OUT"]),
    ("encode --help", ["encode", "--help"]),
    ("decode --help", ["decode", "--help"]),
    # what the README's `ls | cut | xargs decode` chain pays per key: the embedded model's load and
    # one short track (40 frames) decoded at its recommended steps
    ("decode one key", ["decode", "d.zarr", "--key", "t0", "-o", "OUTWAV"]),
]
MODEL_COMMANDS = ("encode --help", "decode --help", "decode one key")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    dt = time.perf_counter() - t0
    if r.returncode != 0:  # a failed command is not a start-up time
        raise SystemExit(f"{' '.join(cmd[3:]) or cmd}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    mods = next((ln.split(" ", 1)[1] for ln in r.stderr.splitlines() if ln.startswith("MODULES")), "")
    return dt, mods.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench_startup.json")
    args = ap.parse_args()
    import os

    with tempfile.TemporaryDirectory(prefix="lincae-startup-") as tmp:
        work = Path(tmp)
        for name in ("a.zarr", "b.zarr"):
            synthetic_store(work / name, [(f"t{i}", 40) for i in range(20)])
        from lincae_core.models import load_model

        default = load_model("default")  # a store of the embedded model's own id and geometry
        synthetic_store(
            work / "d.zarr",
            [(f"t{i}", 40) for i in range(20)],
            model_id=str(default.model_id),
            geometry=default.config.geometry(),
        )
        rows = []
        for label, argv in CASES:
            env = None
            if label == "completion":
                env = {
                    **os.environ,
                    "_LINCAE_COMPLETE": "bash_complete",
                    "COMP_WORDS": "lincae en",
                    "COMP_CWORD": "1",
                }
            bare, cmd_t, mods = [], [], ""
            for i in range(args.repeats):
                bare.append(_run([sys.executable, "-c", "pass"], work)[0])
                argv_i = [
                    a.replace("OUTWAV", f"out-{i}.wav").replace("OUT", f"out-{label.split()[0]}-{i}.zarr")
                    for a in argv
                ]
                dt, mods = _run([sys.executable, "-c", _PROBE, *argv_i], work, env)
                cmd_t.append(dt)
            b, c = statistics.median(bare), statistics.median(cmd_t)
            rows.append({"command": label, "bare_s": b, "median_s": c, "excess_s": c - b, "imports": mods})
            print(f"{label:16s} {c:6.2f} s  (+{c - b:5.2f} s over python -c pass)  imports: {mods or '-'}")
        Path(args.out).write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2) + "\n")
        store_cmds = [r for r in rows if r["command"] not in (*MODEL_COMMANDS, "--version", "--help")]
        worst = max(store_cmds, key=lambda r: r["excess_s"])
        print(f"worst store command: {worst['command']} +{worst['excess_s']:.2f} s (target <= 0.30 s)")
        choice = arithmetic_choice(work, args.repeats)
        Path(args.out).write_text(
            json.dumps({"repeats": args.repeats, "rows": rows, "arithmetic": choice}, indent=2) + "\n"
        )
        print(f"wrote {args.out}")
    return 0


_ARITH = """
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
n = 4 * 2**20  # elements of a block: 8 MB of float16 latents
z = np.random.default_rng(0).standard_normal(n).astype(np.float16)
out, f32 = np.empty_like(z), np.empty(n, np.float32)
tz, tout = torch.from_numpy(z), torch.from_numpy(out)
g = 0.7
def with_numpy():  # the cast, the float32 product, the rounding back: as the kernel's direct()
    np.multiply(z, np.float32(g), out=f32, dtype=np.float32)
    np.copyto(out, f32, casting="unsafe")
def with_torch():
    torch.mul(tz, g, out=tout)
def best(f, r=int(sys.argv[1])):
    f()
    ts = []
    for _ in range(r):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return min(ts)
t_np, t_th = best(with_numpy), best(with_torch)
with_numpy(); a = out.copy(); with_torch()
print(json.dumps({"numpy_s_per_gb": t_np / (2 * n) * 1e9, "torch_s_per_gb": t_th / (2 * n) * 1e9,
                  "bit_identical": bool(np.array_equal(a.view(np.uint16), out.view(np.uint16)))}))
"""


def arithmetic_choice(work: Path, repeats: int) -> dict[str, float | bool]:
    """The ops arithmetic in numpy against torch, and torch's import in a fresh process."""
    imp = []
    for _ in range(repeats):
        bare = _run([sys.executable, "-c", "import numpy"], work)[0]
        imp.append(_run([sys.executable, "-c", "import numpy, torch"], work)[0] - bare)
    r = subprocess.run(
        [sys.executable, "-c", _ARITH, str(max(5, repeats))], capture_output=True, text=True, check=True
    )
    got = json.loads(r.stdout)
    got["torch_import_s"] = statistics.median(imp)
    extra = got["numpy_s_per_gb"] - got["torch_s_per_gb"]
    got["break_even_gb"] = got["torch_import_s"] / extra if extra > 0 else float("inf")
    print(
        f"ops arithmetic (float16 gain, one thread): numpy {got['numpy_s_per_gb']:.2f} s/GB, torch "
        f"{got['torch_s_per_gb']:.3f} s/GB ({got['numpy_s_per_gb'] / got['torch_s_per_gb']:.1f}x; "
        f"bit-identical: {got['bit_identical']}); importing torch costs {got['torch_import_s']:.2f} s, "
        f"which numpy's slower arithmetic spends on {1000 * got['break_even_gb']:.0f} MB of latents"
    )
    return got


if __name__ == "__main__":
    raise SystemExit(main())
