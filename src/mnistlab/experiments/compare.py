"""Published vs reproduced: a seed's own figures (its suite's `[published]`) beside ours.

For every figure the seed published (and one row for each cell it published nothing for):
ours measured the seed's way, from the per-epoch accuracies each run records (test accuracy per
epoch needs `monitor_test`, which the seed suites set); ours measured honestly (the epoch picked
on validation, the test set evaluated once: the run's `test_acc`), mean ± std over the seeds in
the store; the difference in points and a verdict against the noise of one run.

A run counts for a cell when its config is the cell's, seed aside, so a grid run with
overrides (`--epochs 3`) is never compared with a seed's 20-epoch figure: such runs are counted
and left out. The verdict's rule, in words, is `mnistlab.experiments.NOISE_RULE`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mnistlab.config import read_toml
from mnistlab.errors import ConfigError, choices_error
from mnistlab.experiments import BINOMIAL_N, NOISE_RULE
from mnistlab.experiments.results import Stat, config_key, stat
from mnistlab.experiments.storage import masked_url, sqlite_path
from mnistlab.experiments.store import RunRecord, RunStore
from mnistlab.experiments.suites import PUBLISHED_METRICS, Suite, builtin_suites, load_suite
from mnistlab.records import DONE_STATES, RunStatus

REACH = 99.0  # epochs_to_99


@dataclass(frozen=True)
class Row:
    """One published figure of one cell (or the cell alone, when the seed published none)."""

    cell: str
    metric: str  # a PUBLISHED_METRICS key
    published: float | None
    note: str
    seed_protocol: Stat  # ours, measured as the seed measured `metric`
    honest: Stat  # ours: test accuracy of the epoch picked on val, measured once
    runs: int  # finished runs of the cell's config in the store
    diverged: int
    diff: float | None  # seed_protocol.mean - published, in points (epochs for epochs_to_99)
    noise: float | None
    verdict: str

    @property
    def label(self) -> str:
        return PUBLISHED_METRICS[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.cell,
            "metric": self.metric,
            "metric_label": self.label,
            "published": self.published,
            "note": self.note or None,
            "seed_protocol": _stat_dict(self.seed_protocol),
            "honest_test": _stat_dict(self.honest),
            "runs": self.runs,
            "diverged": self.diverged,
            "diff": self.diff,
            "noise": self.noise,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Comparison:
    suite: str
    protocol: str
    source: str
    rows: tuple[Row, ...]
    other_runs: int  # finished runs of the suite's study whose config is none of its cells
    store: str = ""  # the store URL, password masked
    store_found: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "protocol": self.protocol,
            "source": self.source,
            "store": self.store,
            "store_found": self.store_found,
            "noise_rule": NOISE_RULE,
            "other_runs": self.other_runs,
            "rows": [row.to_dict() for row in self.rows],
        }


def _stat_dict(value: Stat) -> dict[str, Any]:
    return {"mean": value.mean, "std": value.std, "n": value.n}


# -- the seed's protocol, applied to one of our runs ---------------------------------------------


def seed_protocol_value(metric: str, record: RunRecord) -> float | None:
    """`metric` measured on one run the way the seed measured it; None where the run lacks it
    (no per-epoch test accuracy; fewer than 3 epochs; 99% never reached)."""
    if metric == "test_acc_final":
        return _number(record.summary.get("test_acc"))
    key = "val_acc" if metric.startswith("val_acc") else "test_acc"
    values = [_number(row.get(key)) for row in record.epochs]
    if metric in ("test_acc_last", "val_acc_last"):
        # the run's own last epoch, and only if it ran the planned epochs
        planned = record.config.get("epochs")
        last = record.epochs[-1] if record.epochs else None
        complete = last is not None and last.get("epoch") == planned
        return values[-1] if complete else None
    if metric in ("test_acc_best", "val_acc_best"):
        known = [v for v in values if v is not None]
        return max(known) if known else None
    if metric in ("test_acc_last3_min", "test_acc_last3_max"):
        last = values[-3:]
        if len(last) < 3 or None in last:
            return None
        numbers = [v for v in last if v is not None]
        return min(numbers) if metric.endswith("min") else max(numbers)
    if metric == "epochs_to_99":
        for row, value in zip(record.epochs, values, strict=True):
            if value is not None and value >= REACH:
                return float(row["epoch"])
        return None
    raise ConfigError(f"unknown published metric {metric!r}")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def binomial_std(accuracy: float, n: int = BINOMIAL_N) -> float:
    """Sampling std, in points, of an accuracy (in %) measured on n images."""
    p = accuracy / 100.0
    return 100.0 * math.sqrt(p * (1.0 - p) / n)


def noise(metric: str, published: float, seed_std: float | None) -> float:
    """2 × sqrt(seed_std² + binomial_std²); for epochs_to_99, 2 × seed_std."""
    spread = seed_std or 0.0
    if metric == "epochs_to_99":
        return 2.0 * spread
    return 2.0 * math.sqrt(spread**2 + binomial_std(published) ** 2)


def verdict(diff: float, limit: float) -> str:
    if abs(diff) <= limit:
        return "within noise"
    return "above" if diff > 0 else "below"


# -- the table -----------------------------------------------------------------------------------


def compare(suite: Suite, records: list[RunRecord], *, store: str = "") -> Comparison:
    """The comparison of `suite`'s published figures with the runs in `records` (its study)."""
    if suite.published is None:
        raise ConfigError(f"suite {suite.name!r} has no [published] table: nothing to compare")
    published = suite.published
    by_key: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.state in DONE_STATES:
            by_key.setdefault(config_key(record.config), []).append(record)
    used: set[str] = set()
    rows: list[Row] = []
    for cell in suite.cells:
        key = cell.config.replace(seed=0).config_hash()
        used.add(key)
        members = by_key.get(key, [])
        figures = published.of(cell.name) or [None]
        for figure in figures:
            metric = figure.metric if figure else published.headline
            rows.append(
                _row(
                    cell.name,
                    metric,
                    figure.value if figure else None,
                    figure.note if figure else "",
                    members,
                )
            )
    other = sum(
        record.state == RunStatus.FINISHED
        for key, members in by_key.items()
        if key not in used
        for record in members
    )
    return Comparison(
        suite.name, published.protocol, published.source, tuple(rows), other, store=store
    )


def _row(
    cell: str, metric: str, published: float | None, note: str, members: list[RunRecord]
) -> Row:
    finished = [m for m in members if m.state == RunStatus.FINISHED]
    diverged = len(members) - len(finished)
    ours = stat([seed_protocol_value(metric, m) for m in finished])
    honest = stat([_number(m.summary.get("test_acc")) for m in finished])
    diff = limit = None
    if not finished:
        text = f"every run diverged ({diverged})" if diverged else "not run"
    elif published is None:
        text = "no published figure"
    elif ours.mean is None:
        text = _no_value(metric, finished)
    else:
        diff = ours.mean - published
        limit = noise(metric, published, ours.std)
        text = verdict(diff, limit)
        missing = len(finished) - ours.n
        if missing:
            why = f"never reached {REACH:g}%" if metric == "epochs_to_99" else "no value"
            text += f" ({missing} of {len(finished)} runs: {why})"
    runs = len(finished)
    return Row(cell, metric, published, note, ours, honest, runs, diverged, diff, limit, text)


def _no_value(metric: str, finished: list[RunRecord]) -> str:
    """Why no finished run of a cell has a seed-protocol value."""
    tested = any(row.get("test_acc") is not None for r in finished for row in r.epochs)
    per_epoch_test = metric not in ("val_acc_best", "val_acc_last", "test_acc_final")
    if per_epoch_test and not tested:
        return "no per-epoch test accuracy (monitor_test off)"
    if metric == "epochs_to_99":
        return f"{REACH:g}% not reached"
    if metric.startswith("test_acc_last3"):
        return "no value (fewer than 3 epochs with test accuracy)"
    return "no value"


# -- from a store --------------------------------------------------------------------------------


def published_suites() -> list[str]:
    """The built-in suites that carry a seed's published figures."""
    return [name for name, path in builtin_suites().items() if "published" in read_toml(path)]


def compare_store(suite_ref: str, store_url: str) -> Comparison:
    """Load a suite (built-in name or PATH.toml) and compare it with its runs in the store.

    A SQLite store that does not exist yet is an empty store (not created): every row 'not run'.
    """
    with_figures = published_suites()
    if suite_ref not in builtin_suites() and not suite_ref.endswith(".toml"):
        raise choices_error("suite", suite_ref, [*with_figures, "PATH.toml"])
    suite = load_suite(suite_ref)
    if suite.published is None:
        raise ConfigError(
            f"suite {suite.name!r} has no [published] table: nothing to compare; "
            f"suites with one: {', '.join(with_figures)}"
        )
    path = sqlite_path(store_url)
    found = path is None or path.is_file()
    records: list[RunRecord] = []
    if found:
        store = RunStore(store_url, heartbeat=False)
        if suite.name in store.suites():
            records = store.records(store.study(suite.name, create=False))
    comparison = compare(suite, records, store=masked_url(store_url))
    return dataclasses.replace(comparison, store_found=found)
