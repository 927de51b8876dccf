"""Per seed of the r8k candidate: val with and without TTA, test with TTA (the recorded figure)
and without (the per-epoch test of the val-chosen epoch), and the last-3-epoch test minimum.

    python lab/frontier/r8k_tta_check.py > lab/frontier/r8k-tta-check.txt
"""

import csv
import json
import statistics
from pathlib import Path

runs = sorted(Path("artifacts/frontier-runs/r8k_candidate").glob("*/summary.json"))
columns: dict[str, list[float]] = {}
print("seed best_epoch val val_tta test_tta test_plain last3")
for path in runs:
    summary = json.loads(path.read_text())
    epochs = list(csv.DictReader((path.parent / "epochs.csv").open()))
    plain = float(epochs[summary["best_epoch"] - 1]["test_acc"])
    last3 = [float(e["test_acc"]) for e in epochs[-3:]]
    row = {
        "val": summary["val_acc"],
        "val_tta": summary["val_acc_tta"],
        "test_tta": summary["test_acc"],
        "test_plain": plain,
        "last3_min": min(last3),
    }
    for key, value in row.items():
        columns.setdefault(key, []).append(value)
    print(summary["seed"], summary["best_epoch"], *(f"{v:.2f}" for v in row.values()), last3)
for key, values in columns.items():
    mean, std = statistics.mean(values), statistics.stdev(values)
    print(f"{key}: {mean:.3f} ± {std:.3f} (min {min(values):.2f})")
