"""Results tables from the store: one row per config (mean ± std over seeds) and per-run rows."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, TypedDict

from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError, MnistlabError, choices_error
from mnistlab.experiments.store import RunRecord
from mnistlab.records import DONE_STATES, RunStatus

RUN_FIELDS = (
    "name",
    "seed",
    "state",
    "val_acc",
    "test_acc",
    "val_loss",
    "best_epoch",
    "epochs",
    "params",
    "seconds",
    "seconds_per_epoch",
    "run_dir",
    "cell_id",
)


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int

    def format(self, digits: int = 2) -> str:
        if self.mean is None:
            return "–"
        if self.n < 2 or self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def stat(values: list[float | None]) -> Stat:
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return Stat(None, None, 0)
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return Stat(statistics.fmean(numbers), std, len(numbers))


class RunRow(TypedDict):
    """One run (trial) of the store, as `results --runs` and reports read it."""

    name: str
    seed: int
    state: str  # a RunStatus value
    val_acc: float | None
    test_acc: float | None
    val_loss: float | None
    best_epoch: int | None
    epochs: int | None
    params: int | None
    seconds: float | None
    seconds_per_epoch: float | None
    device: str | None
    run_dir: str | None
    cell_id: str
    trial: int
    aliases: list[str]
    held_by: str | None
    heartbeat_age: float | None
    grace_seconds: float | None


class ConfigRow(TypedDict):
    """One config over its finished seeds, as `results`, `report` and `compare` read it."""

    name: str  # carries "(config HASH)" when one name has several configs in the store
    config_name: str
    same_as: str | None
    config_key: str
    seeds: int
    diverged: int
    model: str | None
    optimizer: str | None
    scheduler: str | None
    lr: float | None
    batch_size: int | None
    epochs: int | None
    params: int | None
    val_acc: Stat
    test_acc: Stat
    val_loss: Stat
    best_epoch: Stat
    seconds_per_epoch: Stat


def run_rows(records: list[RunRecord]) -> list[RunRow]:
    """One dict per run (trial), finished or not; numbers are None where a run has none."""
    rows: list[RunRow] = []
    for record in records:
        summary = record.summary
        rows.append(
            {
                "name": record.name,
                "seed": record.seed,
                "state": record.state,
                "val_acc": summary.get("val_acc"),
                "test_acc": summary.get("test_acc"),
                "val_loss": summary.get("val_loss"),
                "best_epoch": summary.get("best_epoch"),
                "epochs": record.config.get("epochs"),
                "params": summary.get("params"),
                "seconds": summary.get("seconds"),
                "seconds_per_epoch": summary.get("seconds_per_epoch"),
                "device": summary.get("device"),  # the machine's: a store may mix CPU and GPU runs
                "run_dir": record.run_dir,
                "cell_id": record.cell_id,
                "trial": record.number,
                "aliases": list(record.aliases),
                # a running run: who holds it ("host pid N") and its heartbeat's age in seconds
                "held_by": record.owner.describe() if record.owner else None,
                "heartbeat_age": record.heartbeat_age,
                "grace_seconds": record.grace_seconds,
            }
        )
    return rows


def config_key(config: dict[str, Any]) -> str:
    """The hash of a stored run's config with its seed set to 0: equal for the seeds of one
    config, different when a suite's config under the same name changed."""
    try:
        return TrainConfig.from_dict({**config, "seed": 0}).config_hash()
    except (MnistlabError, TypeError):
        return ""  # a config this version cannot read: matches no current config


def config_groups(
    records: list[RunRecord],
) -> tuple[dict[tuple[str, str], list[RunRecord]], dict[str, str]]:
    """The finished or diverged runs by (name, config hash), each alias of an identical config a
    group of its own; and the name each alias stands for."""
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    same_as: dict[str, str] = {}
    for record in records:
        if record.state in DONE_STATES:
            key = config_key(record.config)
            groups[(record.name, key)].append(record)
            for alias in record.aliases:  # an identical config listed under another name
                groups[(alias, key)].append(record)
                same_as[alias] = record.name
    return groups, same_as


def config_rows(records: list[RunRecord]) -> list[ConfigRow]:
    """One row per config over its finished or diverged seeds, sorted like seed 000's README:
    val acc desc, params asc, val loss asc, time asc (diverged/unfinished configs last).

    Runs are grouped by name and config: when a suite's config under one name was changed and
    re-run, the old and new runs are not averaged together; each such row's name carries its
    config hash (`E1 (config 1a2b3c4d)`)."""
    groups, same_as = config_groups(records)
    configs_of: dict[str, int] = defaultdict(int)
    for name, _ in groups:
        configs_of[name] += 1
    rows: list[ConfigRow] = []
    for (group_name, key), members in groups.items():
        name = group_name if configs_of[group_name] == 1 else f"{group_name} (config {key[:8]})"
        finished = [m.summary for m in members if m.state == RunStatus.FINISHED]
        config = members[0].config
        rows.append(
            {
                "name": name,
                "config_name": group_name,
                "same_as": same_as.get(group_name),
                "config_key": key,
                "seeds": len(finished),
                "diverged": sum(m.state == RunStatus.DIVERGED for m in members),
                "model": config.get("model"),
                "optimizer": config.get("optimizer"),
                "scheduler": config.get("scheduler"),
                "lr": config.get("lr"),
                "batch_size": config.get("batch_size"),
                "epochs": config.get("epochs"),
                "params": members[0].summary.get("params"),
                "val_acc": stat([s.get("val_acc") for s in finished]),
                "test_acc": stat([s.get("test_acc") for s in finished]),
                "val_loss": stat([s.get("val_loss") for s in finished]),
                "best_epoch": stat([s.get("best_epoch") for s in finished]),
                "seconds_per_epoch": stat([s.get("seconds_per_epoch") for s in finished]),
            }
        )

    def key(row: ConfigRow) -> tuple:
        missing = row["val_acc"].mean is None
        return (
            missing,
            -(row["val_acc"].mean or 0.0),
            row["params"] or 0,
            row["val_loss"].mean if row["val_loss"].mean is not None else float("inf"),
            row["seconds_per_epoch"].mean or 0.0,
        )

    return sorted(rows, key=key)


EPOCH_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_acc",
    "seconds",
)


def epoch_tables(records: list[RunRecord], name: str) -> list[tuple[RunRecord, list[dict]]]:
    """Each finished or diverged run of the config called `name`, with its per-epoch rows
    (`EPOCH_FIELDS`; test_acc only where the run monitored it), by seed then trial."""
    names = sorted({r.name for r in records} | {a for r in records for a in r.aliases})
    runs = [r for r in records if (r.name == name or name in r.aliases) and r.state in DONE_STATES]
    if not runs:
        if name in names:
            raise ConfigError(f"config {name!r} has no finished run in the store yet")
        raise choices_error("config", name, names)
    runs.sort(key=lambda r: (r.seed, r.number))
    return [
        (run, [{field: row.get(field) for field in EPOCH_FIELDS} for row in run.epochs])
        for run in runs
    ]


def stale_rows(rows: list[ConfigRow], current_keys: set[str]) -> list[str]:
    """Names of config rows that are none of a suite's current configs (an earlier version of
    the suite, or a grid run with overrides such as --epochs)."""
    return [row["name"] for row in rows if row["config_key"] not in current_keys]
