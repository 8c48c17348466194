#!/usr/bin/env bash
# Reproduce the embedded default model and its baseline with one command:
#   bash scripts/train_default_model.sh
# Renders the seeded stems corpus (16 kHz, 64 tracks x 30 s, 8 held out), trains Lin-CAE and the
# Music2Latent baseline (no additivity, no homogeneity) with the same recipe (scripts/recipe.sh),
# budget and seed, evaluates both on the held-out split with `lincae eval`, and ships them
# (lincae_core/default_model, models/baseline-tiny) with the metrics in the model card, then
# measures both into their cards with `lincae card`.
# Re-runnable: unfinished runs resume from RUNS/*/state.pt (RUNS: ../runs/training beside the
# checkout, or $LINCAE_RUNS/training; never inside the repository). Env: STEPS (schedule length K), STOP
# (stop here, resume later), THREADS, RUNS, CORPUS, REPORT. Resuming a finished run with a larger
# STEPS extends its schedule (docs/training.md, "Extending a finished run").
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-16000}  # the schedule (lr cosine, gain range, Δt) runs on k / 16000 ...
STOP=${STOP:-14000}    # ... and the shipped model stopped at step 14000 (session budget; docs/training-recipe.md)
source scripts/recipe.sh
RUNS=${RUNS:-${LINCAE_RUNS:-../runs}/training};  # resumable state: outside the repository
 REPORT=${REPORT:-docs/default_model_eval}
ensure_corpus
train_run "$RUNS/lincae-v2" &
train_run "$RUNS/baseline-v2" --no-additivity --no-homogeneity &
wait
for name in lincae-v2 baseline-v2; do
  [ -f "$RUNS/$name/FINISHED" ] || { echo "train_default_model: $name stopped before step $STOP; run again" >&2; exit 3; }
done
# the measured cards first (recommended decoding steps), so that eval decodes with them
lincae card "$RUNS/lincae-v2/ema" --stems "$CORPUS/valid"
lincae card "$RUNS/baseline-v2/ema" --stems "$CORPUS/valid"
lincae eval --overwrite --stems "$CORPUS/valid" -c "$RUNS/lincae-v2/ema" --name lincae -c "$RUNS/baseline-v2/ema" \
  --name baseline --max-seconds 12 -o "$REPORT"
python scripts/ship_default_model.py "$RUNS/lincae-v2" "$RUNS/baseline-v2" --report "$REPORT"
for name in lincae-v2 baseline-v2; do  # the text provenance (never state.pt or EMA copies) into training/
  mkdir -p "training/$name"; cp "$RUNS/$name"/{train_config.json,metrics.jsonl} "training/$name/"
done
# the measured model cards (lincae card: recon at 1-4 steps, linearity, Enc(0); docs/evaluation.md)
# (lincae never writes into its installed package: the default is measured into a copy, whose card
# is then shipped; a card that holds measurements is replaced only with --overwrite)
lincae card default --stems "$CORPUS/valid" -o "$RUNS/default-measured" --overwrite
cp "$RUNS/default-measured/model_card.json" lincae_core/default_model/model_card.json
lincae card models/baseline-tiny --stems "$CORPUS/valid" --overwrite
