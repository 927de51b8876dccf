"""The seed000 table of docs/reproductions.md, from `mnistlab compare seed000 --json` of this
folder's store: python lab/seeds/seed000/table.py lab/seeds/seed000/compare.json"""

import json
import sys


def number(stat: dict) -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.2f}" + (f" ± {stat['std']:.2f}" if stat.get("std") else "")


rows = json.load(open(sys.argv[1]))["rows"]
columns = ["config", "figure", "published", "ours, seed protocol", "ours honest (test)", "seeds"]
print("| " + " | ".join([*columns, "diff", "verdict"]) + " |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(
        f"| {r['config']} | {r['metric_label']} | {r['published']:g} "
        f"| {number(r['seed_protocol'])} | {number(r['honest_test'])} | {r['runs']} "
        f"| {r['diff']:+.2f} | {r['verdict']} |"
    )
