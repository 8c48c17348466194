#!/usr/bin/env bash
# The first minutes of a lent GPU train the default model and its baseline (issue 26, item 1):
# the same method and schedule shape as the CPU recipe (docs/training-recipe.md: end_exp 3, cosine
# LR, 0.56-s crops), on the wider `small` preset, a large batch, bfloat16 autocast and TF32.
# Lin-CAE and the same-recipe baseline train at once on the one GPU (two processes), each stopped
# after MINUTES and resumable from $OUT/<run>/state.pt; weights, metrics and configs land in $OUT.
#
#   bash scripts/gpu_train.sh --pack        # here, once: data/gpu-corpus (the 16 kHz corpus as
#                                           # Ogg Vorbis, ~42 MB: small enough to carry)
#   DRY=1 bash scripts/gpu_train.sh         # here: the same script on the CPU, tiny, 20 steps
#   device run: command "bash scripts/gpu_train.sh", carry ["data/gpu-corpus"], timeout_s 600
#
# Env: OUT [gpu-train], CORPUS [data/gpu-corpus], PRESET [small], STEPS [8000] (schedule K),
# BATCH [64], MINUTES [4] (per run, both at once), RESUME_FROM [unset: a folder of runs to continue].
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-train}; CORPUS=${CORPUS:-data/gpu-corpus}; PRESET=${PRESET:-small}
STEPS=${STEPS:-8000}; BATCH=${BATCH:-64}; MINUTES=${MINUTES:-4}; DEVICE=cuda
if [ "${1:-}" = "--pack" ]; then
  bash -c 'source scripts/recipe.sh; ensure_corpus'
  python - "$CORPUS" <<'PY'
import pathlib, sys
import soundfile as sf
src, dst = pathlib.Path("data/corpus16k"), pathlib.Path(sys.argv[1])
for f in sorted(src.rglob("*.wav")):
    out = dst / f.relative_to(src).with_suffix(".ogg")
    out.parent.mkdir(parents=True, exist_ok=True)
    x, sr = sf.read(f, dtype="float32")
    sf.write(out, x, sr, format="OGG", subtype="VORBIS")
size = sum(p.stat().st_size for p in dst.rglob("*.ogg"))
print(f"{dst}: {size / 2**20:.1f} MiB", file=sys.stderr)
assert size < 60 * 2**20, "too large to carry to the device (64 MiB in all)"
PY
  exit 0
fi
if [ -n "${DRY:-}" ]; then DEVICE=cpu; PRESET=tiny; STEPS=20; BATCH=4; MINUTES=2; fi
[ -d "$CORPUS/train" ] || { echo "gpu_train: $CORPUS/train missing: run with --pack first" >&2; exit 2; }
mkdir -p "$OUT"
if [ -n "${RESUME_FROM:-}" ]; then cp -r "$RESUME_FROM"/. "$OUT"/; fi
echo '{"cuda_autocast": "bfloat16", "tf32": true}' > "$OUT/gpu.json"
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/device.txt" 2>&1 || true
run() {  # NAME [flags]: train or resume one run
  local dir="$OUT/$1"; shift
  local resume=(); [ -f "$dir/state.pt" ] && resume=(--resume)
  python -m lincae_cli train -o "$dir" --preset "$PRESET" --data "$CORPUS/train" --valid "$CORPUS/valid" \
    --schedule-steps "$STEPS" --batch-size "$BATCH" --segment-frames 32 --lr 2e-4 --end-exp 3 --seed 0 \
    --checkpoint-every 250 --valid-every 1000 --device "$DEVICE" --config "$OUT/gpu.json" \
    --max-minutes "$MINUTES" "${resume[@]}" "$@" > "$dir.log" 2>&1
  tail -n 1 "$dir.log"
}
t0=$(date +%s)
mkdir -p "$OUT/lincae" "$OUT/baseline"
run lincae &
run baseline --no-additivity --no-homogeneity &
wait
echo "gpu_train: $(( $(date +%s) - t0 )) s on $(head -1 "$OUT/device.txt"); preset $PRESET, batch $BATCH, K $STEPS" \
  | tee -a "$OUT/device.txt"
for r in lincae baseline; do grep -h '"step"' "$OUT/$r/metrics.jsonl" | tail -n 1; done
