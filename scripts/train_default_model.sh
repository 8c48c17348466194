#!/usr/bin/env bash
# Reproduce the embedded default model and its baseline with one command:
#   bash scripts/train_default_model.sh
# Renders the seeded stems corpus (16 kHz, 64 tracks x 30 s, 8 held out), trains Lin-CAE and the
# Music2Latent baseline (no additivity, no homogeneity) with the same recipe (scripts/recipe.sh),
# budget and seed, evaluates both on the held-out split with `lincae eval`, and ships them
# (lincae_core/default_model, models/baseline-tiny) with the metrics in the model card, then
# measures both into their cards with `lincae card`.
# Re-runnable: unfinished runs resume from RUNS/*/state.pt. Env: STEPS (schedule length K), STOP
# (stop here, resume later), THREADS, RUNS, CORPUS, REPORT. Resuming a finished run with a larger
# STEPS extends its schedule (docs/training.md, "Extending a finished run").
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-9500}
source scripts/recipe.sh
RUNS=${RUNS:-training}; REPORT=${REPORT:-docs/default_model_eval}
ensure_corpus
train_run "$RUNS/lincae-tiny" &
train_run "$RUNS/baseline-tiny" --no-additivity --no-homogeneity &
wait
for name in lincae-tiny baseline-tiny; do
  [ -f "$RUNS/$name/FINISHED" ] || { echo "train_default_model: $name stopped before step $STEPS; run again" >&2; exit 3; }
done
lincae eval --overwrite --stems "$CORPUS/valid" -c "$RUNS/lincae-tiny/ema" --name lincae -c "$RUNS/baseline-tiny/ema" \
  --name baseline --max-seconds 12 -o "$REPORT"
python scripts/ship_default_model.py "$RUNS/lincae-tiny" "$RUNS/baseline-tiny" --report "$REPORT"
# the measured model cards (lincae card: recon at 1-4 steps, linearity, Enc(0); docs/evaluation.md)
lincae card default --stems "$CORPUS/valid"
lincae card models/baseline-tiny --stems "$CORPUS/valid"
