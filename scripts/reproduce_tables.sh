#!/usr/bin/env bash
# Reproduce arXiv:2510.23530 Tables 1-2 at CPU scale on the project's rendered stems corpus.
#
#  1. render the corpus if absent (scripts/render_corpus.py, 16 kHz, MUSDB18-HQ layout, seed 1234,
#     the last VALID tracks held out under valid/);
#  2. train four models with the same preset, CPU budget (STEPS) and seed with `lincae train`:
#       lincae          Lin-CAE (implicit homogeneity + additivity)
#       baseline        M2L baseline (--no-additivity --no-homogeneity)
#       no-additivity   "- Additivity (hom. only)"   (--no-additivity)
#       no-homogeneity  "- Homogeneity (add. only)"  (--no-homogeneity)
#  3. `lincae eval` of the four EMA checkpoints on the held-out split, report written to REPORT.
#
# Re-runnable: a run folder that holds a state.pt is resumed, a finished run is skipped. With
# MAX_MINUTES each training call stops (and saves) after that many minutes; the script then exits
# with status 3 until every run has finished, so it can be spread over several sessions.
# Every command it runs is appended to $OUT/commands.log and copied into the report folder.
#
# Environment (defaults in brackets):
#   STEPS [12000]  training steps of each model (~8k steps/hour for the tiny preset on 2 cores)
#   TRACKS [64]    corpus tracks when rendering;  VALID [8] of them held out;  TRACK_SECONDS [30]
#   CORPUS [data/corpus16k]  OUT [runs/reproduce]  REPORT [docs/reproduction]
#   SEED [1234]  PRESET [tiny]  BATCH [8]  SEGMENT_FRAMES [32]  MAX_MINUTES [unset: no limit]
#   EVAL_TRACKS [all valid tracks]  EVAL_SECONDS [unset: whole tracks]  EXAMPLE_SECONDS [5]
#   LINCAE [python -m lincae_cli]
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-12000}
TRACKS=${TRACKS:-64}
VALID=${VALID:-8}
TRACK_SECONDS=${TRACK_SECONDS:-30}
CORPUS=${CORPUS:-data/corpus16k}
OUT=${OUT:-runs/reproduce}
REPORT=${REPORT:-docs/reproduction}
SEED=${SEED:-1234}
PRESET=${PRESET:-tiny}
BATCH=${BATCH:-8}
SEGMENT_FRAMES=${SEGMENT_FRAMES:-32}
MAX_MINUTES=${MAX_MINUTES:-}
EVAL_TRACKS=${EVAL_TRACKS:-}
EVAL_SECONDS=${EVAL_SECONDS:-}
EXAMPLE_SECONDS=${EXAMPLE_SECONDS:-5}
read -r -a LINCAE <<< "${LINCAE:-python -m lincae_cli}"

mkdir -p "$OUT"
LOG="$OUT/commands.log"

run() {  # log the command, then run it
    printf '%q ' "$@" >> "$LOG"
    printf '\n' >> "$LOG"
    "$@"
}

# --- 1. corpus -------------------------------------------------------------------------------
if [ ! -d "$CORPUS/train" ] || [ ! -d "$CORPUS/valid" ]; then
    run python scripts/render_corpus.py "$CORPUS" --tracks "$TRACKS" --seconds "$TRACK_SECONDS" \
        --seed 1234 --sample-rate 16000 --split-valid "$VALID"
fi

# --- 2. training -----------------------------------------------------------------------------
NAMES=(lincae baseline no-additivity no-homogeneity)
LABELS=("Lin-CAE" "M2L baseline" "No additivity (hom. only)" "No homogeneity (add. only)")
FLAGS=("" "--no-additivity --no-homogeneity" "--no-additivity" "--no-homogeneity")

unfinished=0
for i in "${!NAMES[@]}"; do
    dir="$OUT/${NAMES[$i]}"
    if [ -f "$dir/FINISHED" ]; then
        echo "reproduce: ${NAMES[$i]} already trained ($(cat "$dir/FINISHED"))" >&2
        continue
    fi
    read -r -a flags <<< "${FLAGS[$i]}"
    args=(train -o "$dir")
    if [ -f "$dir/state.pt" ]; then
        args+=(--resume)
    else
        args+=(--preset "$PRESET" --data "$CORPUS/train" --valid "$CORPUS/valid" --steps "$STEPS"
               --seed "$SEED" --batch-size "$BATCH" --segment-frames "$SEGMENT_FRAMES" "${flags[@]}")
    fi
    [ -n "$MAX_MINUTES" ] && args+=(--max-minutes "$MAX_MINUTES")
    summary=$(run "${LINCAE[@]}" "${args[@]}" | tee /dev/stderr | tail -n 1)
    if [[ "$summary" == finished* ]]; then
        echo "$summary" > "$dir/FINISHED"
    else
        unfinished=$((unfinished + 1))
    fi
done
if [ "$unfinished" -gt 0 ]; then
    echo "reproduce: $unfinished run(s) unfinished; run this script again to continue" >&2
    exit 3
fi

# --- 3. evaluation ---------------------------------------------------------------------------
args=(eval --stems "$CORPUS/valid" -o "$REPORT" --seed "$SEED" --example-seconds "$EXAMPLE_SECONDS")
for i in "${!NAMES[@]}"; do
    args+=(-c "$OUT/${NAMES[$i]}/ema" --name "${LABELS[$i]}")
done
[ -n "$EVAL_TRACKS" ] && args+=(--max-tracks "$EVAL_TRACKS")
[ -n "$EVAL_SECONDS" ] && args+=(--max-seconds "$EVAL_SECONDS")
run "${LINCAE[@]}" "${args[@]}"
cp "$LOG" "$REPORT/commands.log"
echo "reproduce: report in $REPORT/report.md" >&2
