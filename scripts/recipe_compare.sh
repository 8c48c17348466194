#!/usr/bin/env bash
# Equal-budget recipe comparison before a long CPU run (issue 26, item 2): every variant gets the
# same wall-clock budget on one thread, its whole schedule (K from its measured seconds per step)
# fitting that budget, then the same held-out eval. Variants: the v2 recipe on `tiny` (control),
# the same on `small`, `tiny` with frequency attention at levels 2-4, and `tiny` with an LR floor.
#   BUDGET_MIN=25 RUNS=/work/runs/compare bash scripts/recipe_compare.sh [VARIANT...]
# Resumable: a variant with FINISHED is skipped, an unfinished one resumes. Writes RUNS/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET_MIN=${BUDGET_MIN:-25}; RUNS=${RUNS:-/work/runs/compare}; THREADS=${THREADS:-1}
CORPUS=${CORPUS:-data/corpus16k}; EVAL_SECONDS=${EVAL_SECONDS:-6}
source scripts/recipe.sh
ensure_corpus
mkdir -p "$RUNS/configs"
echo '{"model": {"attention": [0, 0, 1, 1, 1], "encoder_attention": [0, 0, 1, 1, 1]}}' > "$RUNS/configs/attn.json"
echo '{"lr_min": 2e-5}' > "$RUNS/configs/lrmin.json"
variant_args() {  # NAME -> extra `lincae train` options
  case $1 in
    tiny) echo "--preset tiny" ;;
    small) echo "--preset small" ;;
    tiny-attn) echo "--preset tiny --config $RUNS/configs/attn.json" ;;
    tiny-lrmin) echo "--preset tiny --config $RUNS/configs/lrmin.json" ;;
    *) echo "recipe_compare: unknown variant $1" >&2; exit 2 ;;
  esac
}
common=(--data "$CORPUS/train" --valid "$CORPUS/valid" --batch-size 8 --segment-frames 32 --lr 2e-4
        --seed 0 --checkpoint-every 100 --valid-every 250 --channels-last --threads "$THREADS" --end-exp 3)
for name in "${@:-tiny small tiny-attn tiny-lrmin}"; do
  for v in $name; do
    dir="$RUNS/$v"
    [ -f "$dir/FINISHED" ] && { echo "recipe_compare: $v done" >&2; continue; }
    if [ ! -f "$dir/state.pt" ]; then  # measure seconds per step, then fix K for the budget
      rm -rf "$RUNS/probe-$v"
      lincae train -o "$RUNS/probe-$v" $(variant_args "$v") "${common[@]}" --steps 1000 --stop-at 30 \
        --checkpoint-every 1000 --valid-every 100000 >/dev/null
      sps=$(python -c "import json,sys,statistics as s; r=[json.loads(l) for l in open(sys.argv[1])]; print(s.median(x['sec_per_step'] for x in r if 'sec_per_step' in x and x['step']>10))" "$RUNS/probe-$v/metrics.jsonl")
      K=$(python -c "print(int($BUDGET_MIN*60/$sps/100)*100)")
      echo "recipe_compare: $v: $sps s/step -> K = $K" >&2
      echo "$K $sps" > "$RUNS/probe-$v.K"
      resume=()
    else
      K=$(cut -d' ' -f1 "$RUNS/probe-$v.K"); resume=(--resume)
    fi
    summary=$(lincae train -o "$dir" $(variant_args "$v") "${common[@]}" --steps "$K" "${resume[@]}" | tail -n 1)
    echo "$summary" >&2
    [[ "$summary" == finished* ]] || { echo "recipe_compare: $v stopped ($summary); run again" >&2; exit 3; }
    for steps in 1 3; do
      OMP_NUM_THREADS=$THREADS lincae eval --stems "$CORPUS/valid" -c "$dir/ema" --name "$v" --max-seconds "$EVAL_SECONDS" \
        --steps "$steps" --seed 0 -o "$dir/eval$steps" --device cpu --overwrite --json > "$dir/eval$steps.json"
    done
    echo "$summary" > "$dir/FINISHED"
  done
done
python - "$RUNS" <<'EOF' > "$RUNS/table.md"
import json, sys, pathlib
runs = pathlib.Path(sys.argv[1])
print("| variant | K | s/step | eval 1 step recon MSS | eval 3 steps recon MSS |")
print("|---|---|---|---|---|")
for d in sorted(p for p in runs.iterdir() if (p / "FINISHED").exists()):
    K, sps = (runs / f"probe-{d.name}.K").read_text().split()
    cells = []
    for s in (1, 3):
        rep = (d / f"eval{s}.json").read_text()
        cells.append(rep[:0] or str(json.loads(rep.splitlines()[0]).get("summary", "see report")))
    print(f"| {d.name} | {K} | {float(sps):.3f} | {cells[0]} | {cells[1]} |")
EOF
echo "$RUNS/table.md"
