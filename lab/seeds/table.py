"""A seed suite's table of docs/reproductions.md, from `mnistlab compare SUITE --json` of its
store: python lab/seeds/table.py lab/seeds/seed000/compare.json"""

import json
import sys


def number(stat: dict) -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.2f}" + (f" ± {stat['std']:.2f}" if stat.get("std") else "")


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def honest(row: dict) -> str:
    # a test accuracy beside an epoch count would mean nothing (compare leaves it empty too)
    return "–" if row["metric"] == "epochs_to_99" else number(row["honest_test"])


rows = json.load(open(sys.argv[1]))["rows"]
columns = ["config", "figure", "published", "ours, seed protocol", "ours honest (test)", "seeds"]
print("| " + " | ".join([*columns, "diff", "verdict"]) + " |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(
        f"| {r['config']} | {r['metric_label']} | {fmt(r['published'], 'g')} "
        f"| {number(r['seed_protocol'])} | {honest(r)} | {r['runs']} "
        f"| {fmt(r['diff'], '+.2f')} | {r['verdict']} |"
    )
