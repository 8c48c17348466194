#!/usr/bin/env bash
# Equal-budget recipe comparison (issue 12, item 2): one training at a time, 1 thread, then the
# held-out eval of its EMA at 1 and 2 decoding steps. Usage (from the repo root):
#   bash docs/training-recipe/run_variants.sh NAME [extra lincae-train flags...]
# e.g. `... run_variants.sh endexp3 --end-exp 3`; run the variants one after the other, never two at once.
# Env: STEPS [1500], CORPUS [/work/main/data/corpus16k], RUNS [runs].
set -u
export PYTHONPATH=${PYTHONPATH:-$PWD} OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STEPS=${STEPS:-1500}; CORPUS=${CORPUS:-/work/main/data/corpus16k}; RUNS=${RUNS:-runs}
name=$1; shift
dir=$RUNS/$name
cmd=(python -m lincae_cli train -o "$dir" --preset tiny --data "$CORPUS/train" --valid "$CORPUS/valid"
     --steps "$STEPS" --batch-size 8 --segment-frames 32 --lr 2e-4 --seed 0 --checkpoint-every 500
     --valid-every 250 --channels-last --threads 1 "$@")
mkdir -p "$RUNS"
printf '%q ' "${cmd[@]}" >> "$RUNS/commands.txt"; printf '\n' >> "$RUNS/commands.txt"
echo "$(date -Is) start $name" >> "$RUNS/progress.log"
"${cmd[@]}" > "$RUNS/$name.train.log" 2>&1
echo "$(date -Is) trained $name rc=$?" >> "$RUNS/progress.log"
for n in 1 2; do
  ecmd=(python -m lincae_cli eval --stems "$CORPUS/valid" -c "$dir/ema" --name "$name" --max-seconds 6
        --steps "$n" --seed 0 -o "$dir/eval$n" --device cpu --json)
  printf '%q ' "${ecmd[@]}" >> "$RUNS/commands.txt"; printf '\n' >> "$RUNS/commands.txt"
  "${ecmd[@]}" > "$dir/eval$n.json" 2> "$RUNS/$name.eval$n.log"
  echo "$(date -Is) eval$n $name rc=$?" >> "$RUNS/progress.log"
done
