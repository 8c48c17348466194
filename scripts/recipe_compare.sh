#!/usr/bin/env bash
# Equal-budget recipe comparison before a long CPU run (issue 26, item 2). Every variant trains a
# whole schedule (warm-up, cosine LR, Δt, gain annealing over its K) of the same CPU cost: the
# control (`tiny`, the v2 recipe) gets K_TINY steps, and every other variant the number of its own
# steps that cost as much, K = K_TINY x (s/step of tiny) / (s/step of the variant), the two measured
# back to back (30 steps each) so that machine load cancels out in the ratio. Then the same held-out
# eval (1 and 3 decoding steps) for all. Variants: `tiny` (control), `small` (the v2 recipe on the
# wider preset), `tiny-attn` (frequency attention at levels 2-4), `tiny-lrmin` (LR floor 0.1 lr).
#   K_TINY=1500 RUNS=/work/runs/compare bash scripts/recipe_compare.sh [VARIANT...]
# Resumable: a variant with FINISHED is skipped, an unfinished one resumes. Writes RUNS/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
K_TINY=${K_TINY:-1500}; RUNS=${RUNS:-../runs/compare}; THREADS=${THREADS:-1}
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
sec_per_step() {  # VARIANT -> median s/step of 30 steps (after 10 warm-up steps)
  local dir="$RUNS/probe-$1"; rm -rf "$dir"
  lincae train -o "$dir" $(variant_args "$1") "${common[@]}" --schedule-steps 1000 --stop-at 30 \
    --checkpoint-every 1000 --valid-every 100000 >/dev/null 2>&1
  python -c "import json,sys,statistics as s; r=[json.loads(l) for l in open(sys.argv[1])]; print(s.median(x['sec_per_step'] for x in r if 'sec_per_step' in x and x['step']>10))" "$dir/metrics.jsonl"
  rm -rf "$dir"
}
for v in ${@:-tiny small tiny-attn tiny-lrmin}; do
  dir="$RUNS/$v"
  [ -f "$dir/FINISHED" ] && { echo "recipe_compare: $v done" >&2; continue; }
  if [ ! -f "$RUNS/$v.K" ]; then
    if [ "$v" = tiny ]; then
      echo "$K_TINY 1 1" > "$RUNS/$v.K"
    else
      a=$(sec_per_step tiny); b=$(sec_per_step "$v")
      K=$(python -c "print(max(100, round($K_TINY * $a / $b / 100) * 100))")
      echo "recipe_compare: $v: $b s/step vs tiny $a s/step -> K = $K" >&2
      echo "$K $a $b" > "$RUNS/$v.K"
    fi
  fi
  K=$(cut -d' ' -f1 "$RUNS/$v.K")
  resume=(); [ -f "$dir/state.pt" ] && resume=(--resume)
  summary=$(lincae train -o "$dir" $(variant_args "$v") "${common[@]}" --schedule-steps "$K" "${resume[@]}" | tail -n 1)
  echo "$summary" >&2
  [[ "$summary" == finished* ]] || { echo "recipe_compare: $v stopped ($summary); run again" >&2; exit 3; }
  for steps in 1 3; do
    OMP_NUM_THREADS=$THREADS lincae eval --stems "$CORPUS/valid" -c "$dir/ema" --name "$v" --max-seconds "$EVAL_SECONDS" \
      --steps "$steps" --seed 0 -o "$dir/eval$steps" --device cpu --overwrite --json > "$dir/eval$steps.json"
  done
  echo "$summary" > "$dir/FINISHED"
done
python - "$RUNS" <<'PY' > "$RUNS/table.md"
import json, sys, pathlib
runs = pathlib.Path(sys.argv[1])
keys = [("recon_mss", "Recon MSS"), ("dec_hom_mss", "Dec-Hom MSS"), ("enc_hom_err", "Enc-Hom err")]
print("| variant | K | s/step ratio to tiny | " + " | ".join(f"{h} @1 / @3" for _, h in keys) + " | Add Dec MSS @1 / @3 | Add Enc err |")
print("|---|---|---|" + "---|" * (len(keys) + 2))
for d in sorted(p for p in runs.iterdir() if (p / "FINISHED").exists()):
    K, a, b = (runs / f"{d.name}.K").read_text().split()
    m = {s: json.loads((d / f"eval{s}.json").read_text())["checkpoints"][0] for s in (1, 3)}
    t2 = {s: m[s]["table2"]["mean"] for s in m}; t1 = {s: m[s]["table1"]["mean"] for s in m}
    cells = [f"{t2[1].get(k, float('nan')):.2f} / {t2[3].get(k, float('nan')):.2f}" for k, _ in keys]
    cells.append(f"{t1[1]['add_dec_mss']:.2f} / {t1[3]['add_dec_mss']:.2f}")
    cells.append(f"{t1[1]['add_enc_err']:.2f}")
    print(f"| {d.name} | {K} | {float(b) / float(a):.2f} | " + " | ".join(cells) + " |")
PY
echo "$RUNS/table.md"
