#!/usr/bin/env bash
# Every GPU check of the project in one run, for a machine with a CUDA device (never needed by the
# tests). Writes its logs and JSON into $OUT (or ./gpu-check):
#   1. scripts/bench_cuda.py: CUDA encode (float16 autocast) against CPU latents, and x-real-time of
#      encode and decode for the tiny, small and paper presets (the table in docs/presets.md);
#   2. the main job (`lincae demo`) on CUDA with the embedded default model;
#   3. the CLI's encode of the demo's library on CUDA and on the CPU, and the two stores compared.
# Usage: bash scripts/gpu_check.sh  [BENCH_ARGS="--files 8 --seconds 30"]
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
cli() { python3 -m lincae_cli "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, zarr; print('torch', torch.__version__, torch.cuda.get_device_name(), 'zarr', zarr.__version__)"
# shellcheck disable=SC2086
python3 scripts/bench_cuda.py ${BENCH_ARGS:-} --out "$out/bench_cuda.json" 2>&1 | tee "$out/bench_cuda.log"
work=$(mktemp -d)
t0=$(date +%s%N)
cli demo --device cuda --workdir "$work/demo" --json >"$out/demo_cuda.json" 2>"$out/demo_cuda.err"
echo "demo on cuda: rc $? in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
tail -3 "$out/demo_cuda.err"
for dev in cpu cuda; do
  t0=$(date +%s%N)
  cli encode "$work/demo/library" "$work/$dev.zarr" --device "$dev" -q >/dev/null
  echo "encode on $dev: rc $? in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
python3 - "$work/cpu.zarr" "$work/cuda.zarr" <<'PY'
import sys
import numpy as np
from lincae_core.store import LatentStore
a, b = LatentStore.open(sys.argv[1]), LatentStore.open(sys.argv[2])
keys = a.keys()
diff = max(float(np.abs(a.read_track(k).astype(np.float32) - b.read_track(k).astype(np.float32)).max())
           for k in keys)
scale = max(float(np.abs(a.read_track(k).astype(np.float32)).max()) for k in keys)
print(f"CLI encode, default model, {len(keys)} tracks: max |z_cuda - z_cpu| = {diff:.3e} "
      f"= {diff / float(np.spacing(np.float16(scale))):.1f} float16 steps at |z| <= {scale:.2f}")
PY
rm -rf "$work"
