#!/usr/bin/env bash
# Reproduce the embedded default model and its baseline with one command:
#   bash scripts/train_default_model.sh
# Renders the seeded stems corpus (16 kHz, 64 tracks x 30 s, 8 held out), trains Lin-CAE and the
# Music2Latent baseline (no additivity, no homogeneity) with the same preset, budget and seed,
# evaluates both on the held-out split with `lincae eval`, and ships them
# (lincae_core/default_model, models/baseline-tiny) with the metrics in the model card.
# Re-runnable: finished steps are resumed from RUNS/*/state.pt. Env: STEPS (schedule length K),
# STOP (stop here, resume later), THREADS, RUNS, CORPUS, REPORT.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-6000}; STOP=${STOP:-$STEPS}; THREADS=${THREADS:-1}
RUNS=${RUNS:-training}; CORPUS=${CORPUS:-data/corpus16k}; REPORT=${REPORT:-docs/default_model_eval}
[ -d "$CORPUS/valid" ] || { bash scripts/install_corpus_deps.sh
  python scripts/render_corpus.py "$CORPUS" --tracks 64 --seconds 30 --seed 1234 --sample-rate 16000 --split-valid 8; }
COMMON=(--preset tiny --data "$CORPUS/train" --valid "$CORPUS/valid" --steps "$STEPS" --batch-size 8
        --segment-frames 32 --lr 2e-4 --seed 0 --checkpoint-every 200 --valid-every 1000 --channels-last
        --threads "$THREADS" --stop-at "$STOP")
run() {  # name, extra args...
  local name=$1; shift
  local resume=(); [ -f "$RUNS/$name/state.pt" ] && resume=(--resume)
  lincae train -o "$RUNS/$name" "${COMMON[@]}" "$@" "${resume[@]}"
}
run lincae-tiny &
run baseline-tiny --no-additivity --no-homogeneity &
wait
lincae eval --stems "$CORPUS/valid" -c "$RUNS/lincae-tiny/ema" --name lincae -c "$RUNS/baseline-tiny/ema" \
  --name baseline --max-seconds 12 -o "$REPORT"
python scripts/ship_default_model.py "$RUNS/lincae-tiny" "$RUNS/baseline-tiny" --report "$REPORT"
