"""Collect the recipe-comparison table (docs/training-recipe.md) from runs/<name>/{metrics.jsonl,eval1,eval2}.

python docs/training-recipe/collect.py runs control endexp1 ... shipped:shipped-9500 > table.md
"""

import json
import statistics
import sys
from pathlib import Path

root, names = Path(sys.argv[1]), sys.argv[2:]


def ev(run: Path, n: int):
    p = run / f"eval{n}" / "report.json"
    if not p.is_file():
        return None
    c = json.loads(p.read_text())["checkpoints"][0]
    return c["table1"]["mean"], c["table2"]["mean"]


def level_db(run: Path, n: int, name: str):
    """Output/input RMS (dB) of the example track's autoencoded mixture (first example track only)."""
    import numpy as np
    import soundfile as sf

    d = run / f"eval{n}" / "examples" / name
    if not (d / "mixture.wav").is_file():
        return "—"
    x, _ = sf.read(d / "mixture.wav")
    y, _ = sf.read(d / "autoencoded_mixture.wav")
    return f"{20 * np.log10(np.sqrt((y**2).mean()) / np.sqrt((x**2).mean())):.1f}"


rows_a, rows_b = [], []
for spec in names:  # NAME or DIR:NAME (DIR under root, NAME = the eval's --name)
    folder, _, name = spec.partition(":")
    name = name or folder
    run = root / folder
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    cfg = json.loads((run / "train_config.json").read_text())
    train = [r for r in rows if "sec_per_step" in r]
    valid = [r for r in rows if r.get("kind") == "valid"]
    sps = statistics.median(r["sec_per_step"] for r in train)
    last = valid[-1] if valid else {}
    best = min(valid, key=lambda r: r["mss"]) if valid else {}
    curve = " / ".join(f"{r['mss']:.2f}" for r in valid)
    e1, e2 = ev(run, 1), ev(run, 2)
    f = lambda e, t, k, fmt="{:.2f}": fmt.format(e[t][k]) if e else "—"  # noqa: E731
    rows_a.append(
        f"| {name} | {cfg['total_steps']} | {cfg['end_exp']:g} | {cfg['lr_min']:g} | {sps:.3f} | "
        f"{last.get('step', '—')}: {last.get('mss', float('nan')):.2f} | {best.get('mss', float('nan')):.2f} @ {best.get('step', '—')} | "
        f"{f(e1, 1, 'recon_mss')} / {f(e1, 1, 'recon_snr')} | {f(e2, 1, 'recon_mss')} / {f(e2, 1, 'recon_snr')} | "
        f"{level_db(run, 1, name)} / {level_db(run, 2, name)} |"
    )
    rows_b.append(
        f"| {name} | {f(e1, 1, 'enc_hom_err', '{:.3f}')} | {f(e1, 0, 'add_enc_err', '{:.3f}')} | "
        f"{f(e1, 1, 'dec_hom_mss')} / {f(e1, 1, 'dec_hom_snr')} | {f(e1, 0, 'add_dec_mss')} / {f(e1, 0, 'add_dec_snr')} | "
        f"{f(e2, 1, 'dec_hom_mss')} / {f(e2, 1, 'dec_hom_snr')} | {f(e2, 0, 'add_dec_mss')} / {f(e2, 0, 'add_dec_snr')} | {curve} |"
    )

print(
    "| variant | K | end_exp | lr_min | sec/step (median) | final 1-step valid MSS (step: MSS) | best valid MSS @ step "
    "| eval 1 step: Recon MSS↓ / SNR↑ | eval 2 steps: Recon MSS↓ / SNR↑ "
    "| output level, dB re input (1 / 2 steps) |"
)
print("|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows_a))
print()
print(
    "| variant | Enc-Hom err↓ | Add Enc err↓ | 1 step: Dec-Hom MSS↓ / SNR↑ | 1 step: Add Dec MSS↓ / SNR↑ "
    "| 2 steps: Dec-Hom MSS↓ / SNR↑ | 2 steps: Add Dec MSS↓ / SNR↑ | valid MSS curve (every 250 steps) |"
)
print("|---|---|---|---|---|---|---|---|")
print("\n".join(rows_b))
