"""Ship a trained Lin-CAE run as the embedded default model, with the baseline beside it.

Copies ``LINCAE_RUN/ema`` into ``lincae_core/default_model`` and ``BASELINE_RUN/ema`` into
``models/baseline-tiny`` (where the evaluation scripts find it), then writes both models'
held-out metrics (a ``lincae eval`` report.json) side by side into the default model's card.

    python scripts/ship_default_model.py runs/lincae-tiny runs/baseline-tiny --report docs/default_model_eval
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "lincae_core" / "default_model"
BASELINE = ROOT / "models" / "baseline-tiny"


def _copy(run: Path, dest: Path) -> dict:
    src = run / "ema"
    if not (src / "model.safetensors").exists():
        raise SystemExit(f"ship_default_model: {src} has no model.safetensors (train first)")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    return json.loads((dest / "model_card.json").read_text())


def _means(report: dict, name: str) -> dict:
    for ck in report.get("checkpoints", []):
        if ck.get("name") == name:
            return {table: ck[table]["mean"] for table in ("table1", "table2") if table in ck}
    raise SystemExit(f"ship_default_model: no checkpoint named {name!r} in the report")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lincae_run", type=Path)
    p.add_argument("baseline_run", type=Path)
    p.add_argument(
        "--report", type=Path, required=True, help="lincae eval report dir (names lincae, baseline)"
    )
    p.add_argument("--command", default="bash scripts/train_default_model.sh")
    args = p.parse_args()
    card = _copy(args.lincae_run, DEFAULT)
    base_card = _copy(args.baseline_run, BASELINE)
    report = json.loads((args.report / "report.json").read_text())
    card["reproduce"] = args.command
    card["evaluation"] = {
        "report": str(args.report.relative_to(ROOT) if args.report.is_absolute() else args.report),
        "protocol": report.get("protocol", report.get("settings")),
        "lincae": _means(report, "lincae"),
        "baseline": _means(report, "baseline"),
        "baseline_model_id": base_card["model_id"],
    }
    (DEFAULT / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(
        f"shipped {card['model_id'][:12]} (step {card['training'].get('steps')}) as the default; "
        f"baseline {base_card['model_id'][:12]} in {BASELINE.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
