"""docs/reliability.md's table from a fault-injection run, with the commit it measured.

    MNISTLAB_RELIABILITY_REPORT=lab/reliability/reliability.json \\
        pytest -m "slow or not slow" tests/reliability | tee lab/reliability/reliability.log
    python lab/reliability/reliability_table.py [--json lab/reliability/reliability.json] \\
        [--doc docs/reliability.md]

Prints the table; with --doc, replaces the block between that page's
`<!-- reliability-table -->` and `<!-- /reliability-table -->` markers with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- reliability-table -->", "<!-- /reliability-table -->"


def render(report: dict[str, Any]) -> str:
    commit = report.get("commit") or "unknown"
    state = (
        f", with uncommitted changes to {len(report['uncommitted'])} file(s)"
        if report.get("uncommitted")
        else ""
    )
    lines = [
        f"Measured on commit `{commit[:12]}`{state}, {report.get('date', '?')}: "
        f"{report.get('tests', '?')} tests, {report.get('failed', '?')} failed, in "
        f"{report.get('seconds', '?')} s on {report.get('cpus', '?')} CPU cores "
        f"(Python {report.get('python', '?')}, torch {report.get('torch', '?')}).",
        "",
        "| fault injected | trials | survived | lost |",
        "|---|---|---|---|",
    ]
    for record in report["records"]:
        fault = str(record["fault"]).replace("|", "\\|").replace("\n", " ")
        lost = str(record["lost"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {fault} | {record['trials']} | {record['survived']} | {lost} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=REPO / "lab/reliability/reliability.json")
    parser.add_argument(
        "--doc",
        type=Path,
        nargs="?",
        const=REPO / "docs/reliability.md",
        help="rewrite the table block in this file (default docs/reliability.md)",
    )
    args = parser.parse_args()
    report = json.loads(args.json.read_text())
    if isinstance(report, list):  # written before the commit was recorded: no provenance
        report = {"records": report}
    table = render(report)
    if args.doc is None:
        print(table, end="")
        return
    text = args.doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.doc}: no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    args.doc.write_text(f"{head}{START}\n{table}{END}{tail}")


if __name__ == "__main__":
    main()
