#!/usr/bin/env bash
# The long CPU run of issue 26: Lin-CAE and its same-recipe baseline (no additivity, no
# homogeneity), one after the other on one thread each, on the recipe chosen by the equal-budget
# comparison (scripts/recipe_compare.sh; docs/training-recipe.md). K (the schedule length) is fixed
# once, at the first start, in $RUNS/K: every later start resumes the same schedule.
#   nice bash scripts/long_run.sh            # start, or resume where it stopped (background it)
# Env: RUNS [../runs/long] (resumable state, never inside the repository), STEPS [30000] (K, first
# start only), PRESET [tiny], MODEL_JSON ['{"attention": [0, 0, 1, 1, 1], "encoder_attention":
# [0, 0, 1, 1, 1]}'] (the model config over the preset), LR_MIN [unset], THREADS [1].
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-${LINCAE_RUNS:-../runs}/long}; mkdir -p "$RUNS"
if [ ! -f "$RUNS/K" ]; then
  echo "${STEPS:-30000}" > "$RUNS/K"
  cfg="{\"model\": ${MODEL_JSON:-{\"attention\": [0, 0, 1, 1, 1], \"encoder_attention\": [0, 0, 1, 1, 1]\}}"
  [ -n "${LR_MIN:-}" ] && cfg="$cfg, \"lr_min\": $LR_MIN"
  echo "$cfg}" > "$RUNS/config.json"
  echo "${PRESET:-tiny}" > "$RUNS/preset"
fi
STEPS=$(cat "$RUNS/K"); STOP=$STEPS
source scripts/recipe.sh
ensure_corpus
recipe_args
RECIPE=("${RECIPE[@]/#tiny/$(cat "$RUNS/preset")}")
RECIPE+=(--config "$RUNS/config.json" --checkpoint-every 100 --valid-every 1000 --end-exp 3)
run() {  # DIR [flags]: train or resume one run to K
  local dir=$1; shift
  [ -f "$dir/FINISHED" ] && { echo "long_run: $dir finished ($(cat "$dir/FINISHED"))" >&2; return 0; }
  local resume=(); [ -f "$dir/state.pt" ] && resume=(--resume)
  local summary; summary=$(lincae train -o "$dir" "${RECIPE[@]}" "$@" "${resume[@]}" | tail -n 1)
  echo "long_run: $summary" >&2
  [[ "$summary" == finished* ]] && echo "$summary" > "$dir/FINISHED"
  [ -f "$dir/FINISHED" ]
}
run "$RUNS/lincae" && run "$RUNS/baseline" --no-additivity --no-homogeneity
