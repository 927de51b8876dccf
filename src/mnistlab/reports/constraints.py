"""Constraint verification per config: the checklist of seed 002 plus seed 001's consistency.

Architectural checks look at the model built from the stored config, as its forward pass runs
(BatchNorm called, a dropout with p > 0 called, a global pool and no large dense layer: see
`models.summary`), not at what a config claims.
Accuracy checks use validation data only (held out of training): `target` is met when the mean
best val accuracy over seeds reaches it; `consistent` when every seed's last 3 epochs do.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnistlab.experiments.store import RunRecord
from mnistlab.models.summary import DENSE_HEAD_LIMIT, ModelCard, checklist
from mnistlab.records import RunStatus
from mnistlab.reports.document import Table
from mnistlab.reports.tables import ConfigGroup

CONSISTENT_EPOCHS = 3
YES, NO = "✓", "✗"


@dataclass(frozen=True)
class Budget:
    max_params: int
    max_epochs: int
    target: float
    source: str  # where the numbers came from, shown in the report


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def cell(self) -> str:
        return f"{YES if self.ok else NO} {self.detail}".strip()


def consistency(members: list[RunRecord], target: float) -> Check:
    """Seed 001's criterion: for every seed, the last 3 epochs' val accuracy >= target."""
    if not members:
        return Check(False, "no runs")
    worst: float | None = None
    for record in members:
        if record.state == RunStatus.DIVERGED:
            return Check(False, f"seed {record.seed} diverged")
        accs = [row.get("val_acc") for row in record.epochs]
        if len(accs) < CONSISTENT_EPOCHS:
            return Check(False, f"only {len(accs)} epoch(s) recorded (seed {record.seed})")
        last = [a for a in accs[-CONSISTENT_EPOCHS:] if a is not None]
        if len(last) < CONSISTENT_EPOCHS:
            return Check(False, f"missing val acc (seed {record.seed})")
        worst = min(last) if worst is None else min(worst, *last)
    assert worst is not None
    return Check(worst >= target, f"min of last 3: {worst:.2f}")


def checks(group: ConfigGroup, card: ModelCard, budget: Budget) -> dict[str, Check]:
    """The model's checklist (`models.summary.checklist`, as `mnistlab summary` prints it) plus
    the accuracy checks, which only results can answer."""
    epochs = group.config.get("epochs")
    items = checklist(
        card,
        max_params=budget.max_params,
        epochs=epochs if isinstance(epochs, int) else 0,
        max_epochs=budget.max_epochs,
    )
    result = {item.key: Check(bool(item.ok), item.detail) for item in items if item.key in COLUMNS}
    val = group.stat("val_acc")
    result["target"] = Check(
        val.mean is not None and val.mean >= budget.target,
        group.fmt("val_acc") if val.mean is not None else "no finished seed",
    )
    result["consistent"] = consistency(group.members, budget.target)
    return result


COLUMNS = {
    "params": "params < {max_params:,}",
    "bn": "BN",
    "dropout": "dropout",
    "gap": "GAP (no dense > " + f"{DENSE_HEAD_LIMIT:,})",
    "epochs": "epochs ≤ {max_epochs}",
    "target": "val acc ≥ {target:g}% (mean)",
    "consistent": "last 3 epochs ≥ {target:g}% (every seed)",
}


def checklist_table(rows: list[tuple[ConfigGroup, dict[str, Check]]], budget: Budget) -> Table:
    values = {"max_params": budget.max_params, "max_epochs": budget.max_epochs}
    values["target"] = budget.target  # type: ignore[assignment]
    headers = ["config", *(title.format(**values) for title in COLUMNS.values()), "all met"]
    table_rows = []
    for group, result in rows:
        met = sum(c.ok for c in result.values())
        everything = f"{YES} all" if met == len(result) else f"{NO} {met}/{len(result)} met"
        table_rows.append([group.label(), *(result[key].cell() for key in COLUMNS), everything])
    return Table(headers, table_rows, ["l"] * (len(headers)))
