#!/usr/bin/env bash
# Reproduce arXiv:2510.23530 Tables 1-2 at CPU scale on the project's rendered stems corpus:
#   bash scripts/reproduce_tables.sh
#
#  1. render the corpus if absent (scripts/render_corpus.py, 16 kHz, MUSDB18-HQ layout, seed 1234,
#     the last 8 tracks held out under valid/);
#  2. train four models with the default model's recipe (scripts/recipe.sh: tiny preset, same
#     steps, seed and data), two at a time on one thread each:
#       lincae          Lin-CAE (implicit homogeneity + additivity)
#       baseline        M2L baseline (--no-additivity --no-homogeneity)
#       no-additivity   "- Additivity (hom. only)"   (--no-additivity)
#       no-homogeneity  "- Homogeneity (add. only)"  (--no-homogeneity)
#  3. `lincae eval` of the four EMA checkpoints on the held-out split, report written to REPORT.
#
# Re-runnable: a run folder whose FINISHED names step STEPS is skipped, one with a state.pt is
# resumed (a run finished at another K is extended to STEPS). With STOP or MAX_MINUTES a session
# trains only up to that step or time and the script exits with status 3 until every run has
# finished. Every training and eval command is appended to $OUT/commands.log and copied into the
# report folder.
# Environment: STEPS [6000]  STOP [STEPS]  MAX_MINUTES [unset]  SEED [0]  THREADS [1]  CORPUS [data/corpus16k]
#   OUT [training/reproduce]  REPORT [docs/reproduction]  EVAL_TRACKS [all]  EVAL_SECONDS [all]
#   EXAMPLE_SECONDS [5]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-6000}
source scripts/recipe.sh
OUT=${OUT:-${LINCAE_RUNS:-../runs}/reproduce}; REPORT=${REPORT:-docs/reproduction}
EVAL_TRACKS=${EVAL_TRACKS:-}; EVAL_SECONDS=${EVAL_SECONDS:-}; EXAMPLE_SECONDS=${EXAMPLE_SECONDS:-5}
mkdir -p "$OUT"
LOG="$OUT/commands.log"
ensure_corpus

NAMES=(lincae baseline no-additivity no-homogeneity)
LABELS=("Lin-CAE" "M2L baseline" "No additivity (hom. only)" "No homogeneity (add. only)")
FLAGS=("" "--no-additivity --no-homogeneity" "--no-additivity" "--no-homogeneity")

for pair in "0 1" "2 3"; do
  for i in $pair; do
    read -r -a flags <<< "${FLAGS[$i]}"
    train_run "$OUT/${NAMES[$i]}" "${flags[@]}" &
  done
  wait
done
unfinished=0
for name in "${NAMES[@]}"; do [ -f "$OUT/$name/FINISHED" ] || unfinished=$((unfinished + 1)); done
if [ "$unfinished" -gt 0 ]; then
  echo "reproduce: $unfinished run(s) unfinished; run this script again to continue" >&2
  exit 3
fi

args=(lincae eval --stems "$CORPUS/valid" -o "$REPORT" --overwrite --seed "$SEED" --example-seconds "$EXAMPLE_SECONDS")
for i in "${!NAMES[@]}"; do
  args+=(-c "$OUT/${NAMES[$i]}/ema" --name "${LABELS[$i]}")
done
[ -n "$EVAL_TRACKS" ] && args+=(--max-tracks "$EVAL_TRACKS")
[ -n "$EVAL_SECONDS" ] && args+=(--max-seconds "$EVAL_SECONDS")
log_cmd "${args[@]}"
"${args[@]}"
cp "$LOG" "$REPORT/commands.log"
echo "reproduce: report in $REPORT/report.md" >&2
