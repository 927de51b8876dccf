#!/bin/bash
# docs/reproductions.md's raw tables: for each seed suite with a store in lab/repro-2026-11/,
# `mnistlab compare` and the per-run results, as text (and compare as JSON).
#   bash lab/repro-2026-11/repro_report.sh [SUITE...]
set -u
cd "$(dirname "$0")/../.."
export COLUMNS=220  # rich tables: wide enough for every column
for s in "${@:-seed000 seed001 seed002 seed003 seed004}"; do
  db=lab/repro-2026-11/$s.db
  [[ -f $db ]] || continue
  store=(--store "sqlite:///$db")
  { echo "\$ mnistlab compare $s ${store[*]}   # commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
    .venv/bin/mnistlab compare "$s" "${store[@]}"; } >"lab/repro-2026-11/compare-$s.txt" 2>&1
  .venv/bin/mnistlab compare "$s" "${store[@]}" --json >"lab/repro-2026-11/compare-$s.json" 2>&1
  { echo "\$ mnistlab results --suite $s ${store[*]} --runs"
    .venv/bin/mnistlab results --suite "$s" "${store[@]}" --runs; } >"lab/repro-2026-11/results-$s.txt" 2>&1
done
# one markdown table per suite from the JSON, for docs/reproductions.md
.venv/bin/python - "$@" <<'PY'
import json, sys
from pathlib import Path
for suite in sys.argv[1:] or ["seed000", "seed001", "seed002", "seed003", "seed004"]:
    path = Path(f"lab/repro-2026-11/compare-{suite}.json")
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
    Path(f"lab/repro-2026-11/compare-{suite}.md").write_text("\n".join(lines) + "\n")
PY
