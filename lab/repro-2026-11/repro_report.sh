#!/bin/bash
# docs/reproductions.md's raw tables: for each seed suite with a store in docs/results/repro/,
# `mnistlab compare` and the per-run results, as text (and compare as JSON).
#   bash tools/repro_report.sh [SUITE...]
set -u
cd "$(dirname "$0")/.."
export COLUMNS=220  # rich tables: wide enough for every column
for s in "${@:-seed000 seed001 seed002 seed003 seed004}"; do
  db=docs/results/repro/$s.db
  [[ -f $db ]] || continue
  store=(--store "sqlite:///$db")
  { echo "\$ mnistlab compare $s ${store[*]}   # commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
    .venv/bin/mnistlab compare "$s" "${store[@]}"; } >"docs/results/repro/compare-$s.txt" 2>&1
  .venv/bin/mnistlab compare "$s" "${store[@]}" --json >"docs/results/repro/compare-$s.json" 2>&1
  { echo "\$ mnistlab results --suite $s ${store[*]} --runs"
    .venv/bin/mnistlab results --suite "$s" "${store[@]}" --runs; } >"docs/results/repro/results-$s.txt" 2>&1
done
# one markdown table per suite from the JSON, for docs/reproductions.md
.venv/bin/python - "$@" <<'PY'
import json, sys
from pathlib import Path
for suite in sys.argv[1:] or ["seed000", "seed001", "seed002", "seed003", "seed004"]:
    path = Path(f"docs/results/repro/compare-{suite}.json")
    if not path.exists():
        continue
    data = json.loads(path.read_text())
    fmt = lambda s: "–" if not s or s.get("mean") is None else (f"{s['mean']:.2f}" + (f" ± {s['std']:.2f}" if s.get("std") is not None and s["n"] > 1 else ""))
    lines = [f"| config | figure | published | ours, seed protocol | ours honest (test) | seeds | diff | verdict |", "|---|---|---|---|---|---|---|---|"]
    for row in data["rows"]:
        if row["verdict"] == "not run" and row["published"] is None:
            continue
        diff = "–" if row["diff"] is None else f"{row['diff']:+.2f}"
        published = "–" if row["published"] is None else f"{row['published']:g}"
        honest = fmt(row["honest_test"]) if row["metric"] != "epochs_to_99" else "–"
        lines.append(f"| {row['config']} | {row['metric_label']} | {published} | {fmt(row['seed_protocol'])} | {honest} | {row['runs']} | {diff} | {row['verdict']} |")
    Path(f"docs/results/repro/compare-{suite}.md").write_text("\n".join(lines) + "\n")
PY
