# The one training recipe of the shipped default model and of the table reproduction; sourced by
# scripts/train_default_model.sh and scripts/reproduce_tables.sh (so both train with the very same
# command). Env overrides: CORPUS [data/corpus16k], STEPS [6000] (schedule length K), STOP [STEPS],
# THREADS [1] (per run; two runs share the 2 cores), SEED [0], MAX_MINUTES [unset] (stop each
# run after this much wall time; run the script again to continue).
CORPUS=${CORPUS:-data/corpus16k}
STEPS=${STEPS:-6000}; STOP=${STOP:-$STEPS}; THREADS=${THREADS:-1}; SEED=${SEED:-0}

ensure_corpus() {  # render the seeded 16 kHz stems corpus (64 tracks x 30 s, 8 held out) if absent
  [ -d "$CORPUS/valid" ] && return 0
  bash scripts/install_corpus_deps.sh
  python scripts/render_corpus.py "$CORPUS" --tracks 64 --seconds 30 --seed 1234 --sample-rate 16000 \
    --split-valid 8
}

recipe_args() {  # the shared `lincae train` options (tiny preset, 0.56-s crops, batch 8, lr 2e-4)
  RECIPE=(--preset tiny --data "$CORPUS/train" --valid "$CORPUS/valid" --schedule-steps "$STEPS" --batch-size 8
          --segment-frames 32 --lr 2e-4 --seed "$SEED" --checkpoint-every 200 --valid-every 1000
          --channels-last --threads "$THREADS" --stop-at "$STOP")
}

log_cmd() {  # append the command line to $LOG (when set), shell-quoted
  [ -z "${LOG:-}" ] && return 0
  printf '%q ' "$@" >> "$LOG"; printf '\n' >> "$LOG"
}

train_run() {  # DIR [extra flags...]: train (or resume) one run; writes DIR/FINISHED at the end
  local dir=$1; shift
  if [ -f "$dir/FINISHED" ]; then  # done at STOP of K=STEPS: skip; else continue or extend it
    if grep -q "step $STOP/$STEPS;" "$dir/FINISHED"; then
      echo "recipe: $dir already trained ($(cat "$dir/FINISHED"))" >&2; return 0
    fi
    rm "$dir/FINISHED"
  fi
  local resume=(); [ -f "$dir/state.pt" ] && resume=(--resume)
  recipe_args
  local cmd=(lincae train -o "$dir" "${RECIPE[@]}" "$@" "${resume[@]}")
  [ -n "${MAX_MINUTES:-}" ] && cmd+=(--max-minutes "$MAX_MINUTES")
  log_cmd "${cmd[@]}"
  local summary; summary=$("${cmd[@]}" | tail -n 1)
  echo "$summary" >&2
  # finished at K, or stopped where STOP asked (a schedule of K steps cut at STOP < K)
  [[ "$summary" == finished* || "$summary" == "stopped at step $STOP/"* ]] && echo "$summary" > "$dir/FINISHED"
  return 0
}
