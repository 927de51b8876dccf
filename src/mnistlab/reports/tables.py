"""The results tables of the report: full results, best config, top-k, every run.

Rows and their order come from `experiments.results.config_rows` (mean ± std over seeds, sorted
like seed 000's README), so the report and `mnistlab results` never disagree. Runs that diverged
or lack epochs are shown as such, never dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mnistlab.errors import MnistlabError
from mnistlab.experiments.results import ConfigRow, Stat, config_groups, config_rows
from mnistlab.experiments.store import RunRecord
from mnistlab.models import model_options
from mnistlab.records import RunStatus
from mnistlab.reports.document import Block, Bullets, Paragraph, Table

# the formats of `mnistlab results`, so both print the same strings
DIGITS = {"val_acc": 2, "test_acc": 2, "val_loss": 4, "best_epoch": 1, "seconds_per_epoch": 1}


@dataclass
class ConfigGroup:
    """One config name: its `config_rows` row and the runs behind it (finished or diverged)."""

    row: ConfigRow
    members: list[RunRecord]

    @property
    def name(self) -> str:
        return str(self.row["name"])

    @property
    def config(self) -> dict[str, Any]:
        return self.members[0].config

    @property
    def finished(self) -> list[RunRecord]:
        return [m for m in self.members if m.state == RunStatus.FINISHED]

    def stat(self, key: str) -> Stat:
        return self.row[key]  # type: ignore[literal-required]  # key: one of the Stat fields

    def fmt(self, key: str) -> str:
        return self.stat(key).format(DIGITS[key])

    def label(self) -> str:
        return self.name + (f" (= {self.row['same_as']})" if self.row["same_as"] else "")


def group_configs(records: list[RunRecord]) -> list[ConfigGroup]:
    """Config groups in the order of `config_rows` (best first)."""
    groups, _ = config_groups(records)
    return [
        ConfigGroup(row, groups[(row["config_name"], row["config_key"])])
        for row in config_rows(records)
    ]


def resolved_options(config: dict[str, Any]) -> dict[str, Any]:
    """The model options a run used: the model's defaults, then the config's own."""
    try:
        defaults = model_options(str(config.get("model")))
    except MnistlabError:  # a model this version no longer registers
        defaults = {}
    return {**defaults, **config.get("model_options", {})}


def run_status(record: RunRecord) -> str:
    """'finished', 'diverged at epoch N', 'missing epochs: 2/3 recorded', or the store state."""
    if record.state == RunStatus.DIVERGED:
        epoch = record.summary.get("diverged_epoch")
        return f"diverged at epoch {epoch}" if epoch else "diverged"
    planned = record.config.get("epochs")
    if record.state == RunStatus.FINISHED:
        got = len(record.epochs)
        if isinstance(planned, int) and got < planned:
            return f"missing epochs: {got}/{planned} recorded"
        return RunStatus.FINISHED
    return record.state


def config_status(group: ConfigGroup) -> str:
    parts: list[str] = []
    ok = sum(run_status(m) == RunStatus.FINISHED for m in group.members)
    if ok:
        parts.append(f"{ok} ok")
    diverged = [m for m in group.members if m.state == RunStatus.DIVERGED]
    if diverged:
        epochs = sorted({str(m.summary.get("diverged_epoch") or "?") for m in diverged})
        parts.append(f"{len(diverged)} diverged at epoch {', '.join(epochs)}")
    for member in group.members:
        status = run_status(member)
        if status.startswith("missing"):
            parts.append(f"seed {member.seed}: {status}")
    return "; ".join(parts)


def _num(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _yes(value: Any) -> str:
    return "–" if value is None else str(value)


def results_table(groups: list[ConfigGroup]) -> Table:
    headers = [
        "#",
        "config",
        "seeds",
        "status",
        "model",
        "BN",
        "dropout",
        "act",
        "optimizer",
        "scheduler",
        "lr",
        "batch",
        "epochs",
        "params",
        "val acc %",
        "test acc %",
        "val loss",
        "best epoch",
        "s/epoch",
    ]
    rows = []
    for rank, group in enumerate(groups, 1):
        row, options = group.row, resolved_options(group.config)
        rows.append(
            [
                str(rank),
                group.label(),
                str(row["seeds"]),
                config_status(group),
                str(row["model"]),
                _yes(options.get("use_bn")),
                _num(options.get("dropout_p"), ".3f"),
                _yes(options.get("activation")),
                str(row["optimizer"]),
                str(row["scheduler"]),
                _num(row["lr"], "g"),
                str(row["batch_size"]),
                str(row["epochs"]),
                _num(row["params"], ","),
                group.fmt("val_acc"),
                group.fmt("test_acc"),
                group.fmt("val_loss"),
                group.fmt("best_epoch"),
                group.fmt("seconds_per_epoch"),
            ]
        )
    align: list[Any] = ["r", "l", "r", "l", "l", "l", "r", "l", "l", "l", "r", "r", "r", "r"]
    return Table(headers, rows, align + ["r"] * 5, css="results")


def topk_table(groups: list[ConfigGroup], k: int) -> Table:
    headers = ["#", "config", "seeds", "val acc %", "val loss", "test acc %", "params", "epochs"]
    headers.append("best epoch")
    rows = [
        [
            str(rank),
            group.label(),
            str(group.row["seeds"]),
            group.fmt("val_acc"),
            group.fmt("val_loss"),
            group.fmt("test_acc"),
            _num(group.row["params"], ","),
            str(group.row["epochs"]),
            group.fmt("best_epoch"),
        ]
        for rank, group in enumerate(ranked(groups)[:k], 1)
    ]
    return Table(headers, rows, ["r", "l", "r", "r", "r", "r", "r", "r", "r"])


def ranked(groups: list[ConfigGroup], *, distinct: bool = True) -> list[ConfigGroup]:
    """Configs with at least one finished seed, best first; `distinct` drops the rows that
    repeat an identical config under a second name (one curve, one top-k entry each)."""
    return [
        g
        for g in groups
        if g.stat("val_acc").mean is not None and not (distinct and g.row["same_as"])
    ]


def best_run(group: ConfigGroup) -> RunRecord:
    """The seed chosen on validation (accuracy, then loss): test accuracy never chooses."""

    def key(record: RunRecord) -> tuple[float, float]:
        summary = record.summary
        return (summary.get("val_acc") or 0.0, -(summary.get("val_loss") or float("inf")))

    return max(group.finished, key=key)


def best_block(group: ConfigGroup) -> list[Block]:
    config, options = group.config, resolved_options(group.config)
    seeds = group.row["seeds"]
    over = f" (mean ± std over {seeds} seeds)" if seeds > 1 else " (1 seed)"
    run = best_run(group)
    augment = augmentation(config)
    items = [
        f"**Config:** `{group.label()}`",
        f"**Val acc:** {group.fmt('val_acc')}%{over}, chosen epoch by epoch on validation",
        f"**Val loss:** {group.fmt('val_loss')}",
        f"**Test acc:** {group.fmt('test_acc')}% (evaluated once, on the weights chosen on val)",
        f"**Params:** {_num(group.row['params'], ',')}",
        f"**Epochs:** {group.row['epochs']}, **best epoch:** {group.fmt('best_epoch')}",
        "**Model:** `{}` — BN: {} | Dropout: {} | Activation: {} | Width: {}".format(
            config.get("model"),
            options.get("use_bn", "–"),
            _num(options.get("dropout_p"), ".3f"),
            options.get("activation", "–"),
            options.get("width", "–"),
        ),
        (
            "**Training:** {} + {} | LR: {} | Batch: {} | Weight decay: {} | Label smoothing: {}"
        ).format(
            config.get("optimizer"),
            config.get("scheduler"),
            _num(config.get("lr"), "g"),
            config.get("batch_size"),
            _num(config.get("weight_decay"), "g"),
            _num(config.get("label_smoothing"), "g"),
        ),
        f"**Augmentation:** {augment}",
        f"**Best seed (on val):** seed {run.seed}, run directory `{run.run_dir or '–'}`",
    ]
    if config.get("desc"):
        items.insert(1, f"**Description:** {config['desc']}")
    return [Bullets(items)]


def augmentation(config: dict[str, Any]) -> str:
    parts = []
    if config.get("rotate_deg"):
        parts.append(f"rotate ±{config['rotate_deg']:g}°")
    if config.get("translate"):
        parts.append(f"shift ±{100 * config['translate']:g}%")
    if config.get("scale"):
        parts.append(f"scale ±{100 * config['scale']:g}%")
    if config.get("erase_p"):
        parts.append(f"random erasing p={config['erase_p']:g}")
    if not parts:
        return "none"
    last = config.get("no_aug_last", 0)
    return ", ".join(parts) + (f"; none in the last {last} epoch(s)" if last else "")


def runs_table(records: list[RunRecord]) -> Table:
    headers = ["trial", "config", "seed", "state", "epochs recorded", "val acc %", "test acc %"]
    headers += ["val loss", "best epoch", "s/epoch", "device", "run directory"]
    rows = []
    for record in sorted(records, key=lambda r: r.number):
        summary = record.summary
        rows.append(
            [
                str(record.number),
                record.name + (f" (also {', '.join(record.aliases)})" if record.aliases else ""),
                str(record.seed),
                run_status(record),
                f"{len(record.epochs)}/{record.config.get('epochs', '?')}",
                _num(summary.get("val_acc"), ".2f"),
                _num(summary.get("test_acc"), ".2f"),
                _num(summary.get("val_loss"), ".4f"),
                _yes(summary.get("best_epoch")),
                _num(summary.get("seconds_per_epoch"), ".1f"),
                _yes(summary.get("device")),
                f"`{record.run_dir}`" if record.run_dir else "–",
            ]
        )
    return Table(headers, rows, ["r", "l", "r", "l", "r", "r", "r", "r", "r", "r", "l", "l"])


def state_counts(records: list[RunRecord]) -> Paragraph:
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        counts[run_status(record).split(" at ")[0].split(":")[0]] += 1
    text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return Paragraph(f"{len(records)} runs: {text}.")
