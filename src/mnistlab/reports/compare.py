"""The "published vs reproduced" table: `mnistlab compare` prints it, `mnistlab report` shows it.

The numbers come from `experiments.compare`; this module only turns them into one table and the
lines under it (the seed's protocol, where its figures are written, the noise rule), so the
command and the report print the same strings.
"""

from __future__ import annotations

from mnistlab.experiments import NOISE_RULE
from mnistlab.experiments.compare import Comparison, Row, compare
from mnistlab.experiments.results import Stat
from mnistlab.experiments.store import RunRecord
from mnistlab.experiments.suites import builtin_suites, load_suite
from mnistlab.reports.document import Block, Bullets, Heading, Paragraph, Table

HEADERS = [
    "config",
    "figure (as the seed measured it)",
    "published",
    "ours, seed protocol",
    "ours honest: test at the epoch picked on val",
    "seeds",
    "ours − published",
    "noise",
    "verdict",
]
ALIGN = ["l", "l", "r", "r", "r", "r", "r", "r", "l"]


def _digits(row: Row) -> int:
    return 1 if row.metric == "epochs_to_99" else 2


def _published(row: Row) -> str:
    if row.published is None:
        return "–"
    return f"{row.published:.0f}" if row.metric == "epochs_to_99" else f"{row.published:.2f}"


def _stat(value: Stat, digits: int) -> str:
    return "–" if value.mean is None else value.format(digits)


def comparison_table(comparison: Comparison) -> Table:
    """One row per published figure (and per cell without one): the seed's, ours two ways."""
    rows = []
    for row in comparison.rows:
        digits = _digits(row)
        rows.append(
            [
                row.cell,
                row.label,
                _published(row),
                _stat(row.seed_protocol, digits),
                # a speed figure has no honest counterpart: the test accuracy there says nothing
                "–" if row.metric == "epochs_to_99" else _stat(row.honest, 2),
                str(row.runs),
                "–" if row.diff is None else f"{row.diff:+.{digits}f}",
                "–" if row.noise is None else f"{row.noise:.{digits}f}",
                row.verdict,
            ]
        )
    return Table(list(HEADERS), rows, list(ALIGN))


def comparison_notes(comparison: Comparison) -> list[str]:
    """The lines under the table: how to read it, and what was left out."""
    notes = [
        f"Seed protocol ({comparison.suite}): {comparison.protocol}.",
        f"Published figures: {comparison.source}.",
        "Ours: mean ± std over the finished seeds in the store. Seed protocol: the seed's "
        "figure measured on our runs from their per-epoch accuracies. Honest: the epoch picked "
        "on validation, the test set evaluated once on it.",
        f"Verdict: {NOISE_RULE}",
    ]
    if not comparison.store_found:
        notes.append(f"No store at {comparison.store}: nothing has been run yet.")
    if comparison.other_runs:
        notes.append(
            f"Left out: {comparison.other_runs} finished run(s) of suite {comparison.suite} whose "
            "config is none of the suite's (e.g. a grid run with --epochs)."
        )
    seen: set[tuple[str, str]] = set()  # a config's note, once, however many figures it has
    for row in comparison.rows:
        if row.note and (row.cell, row.note) not in seen:
            seen.add((row.cell, row.note))
            notes.append(f"{row.cell}: {row.note}.")
    return notes


def published_section(suite: str, records: list[RunRecord]) -> list[Block]:
    """The report's "Published vs reproduced" section; nothing for a suite that is not a
    built-in one with published figures."""
    if suite not in builtin_suites():
        return []
    loaded = load_suite(suite)
    if loaded.published is None:
        return []
    comparison = compare(loaded, records)
    return [
        Heading(2, "Published vs reproduced"),
        Paragraph(
            f"The figures the seed published for suite `{suite}` (its README), beside ours: "
            "measured the seed's way, and honestly. Only runs with exactly the suite's config "
            "count (`mnistlab compare` prints the same table)."
        ),
        comparison_table(comparison),
        Bullets(comparison_notes(comparison)),
    ]
