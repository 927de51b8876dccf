"""Suites: a base config plus named groups of variants and cartesian axes, written in TOML.

    name = "seed000"
    description = "..."
    [base]                      # TrainConfig keys shared by every run
    model = "tiny"
    [[groups]]
    name = "C_bs_sweep"
    set = { use_bn = true }     # TrainConfig keys for this group (model_options merge one level)
    variants = [ { name = "sgd_onecycle", optimizer = "sgd", lr = 0.05 } ]
    axes = { batch_size = [32, 64, 128] }
    axis_labels = { batch_size = "bs" }

`recipe = "r8k"` (in base, set or a variant) starts that config from a named recipe
(`mnistlab.recipes`); keys written beside it override the recipe's. A top-level `seeds = 5`
is the number of seeds `grid` runs when `--seeds` is not given.

A group expands to variants x axes; each run is named `group_variant_bs64`. A group with no
variants is one variant; a group with no axes is one point.

A seed's suite may carry the seed's published figures, for `mnistlab compare`. They are data
about the seed, never part of a run: no config or config hash depends on them.

    [published]
    protocol = "best epoch on the test set, 1 run"   # how the seed measured, in words
    source = "seed README, 'Full Results'"           # where the figures are written
    B_bn_do_sgd_onecycle = { test_acc_best = 99.44 } # a cell's name = {metric = figure}
    E1 = { test_acc_best = 98.58, note = "README: '~98.58%'" }

The metrics are the keys of PUBLISHED_METRICS; accuracies are in %.

A suite may also state the constraints its project set itself, which `mnistlab report` checks
every config against (also never part of a run):

    [budget]
    max_params = 20000   # params must stay below this
    max_epochs = 20
    target = 99.4        # val accuracy, %
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mnistlab.config import TrainConfig, read_toml
from mnistlab.errors import ConfigError, choices_error
from mnistlab.run import layer_config, merge_tables, override
from mnistlab.run.build import build_model

SUITE_KEYS = ("name", "description", "seeds", "base", "groups", "published", "budget")
BUDGET_KEYS = ("max_params", "max_epochs", "target")
GROUP_KEYS = ("name", "description", "set", "variants", "axes", "axis_labels")
# a published figure's metric -> how the seed measured it; the order is the order of rows
PUBLISHED_METRICS = {
    "test_acc_best": "best epoch picked on test",
    "val_acc_best": "best epoch's val acc (picked on val)",
    "test_acc_last3_min": "lowest test acc of the last 3 epochs",
    "test_acc_last3_max": "highest test acc of the last 3 epochs",
    "test_acc_final": "test acc of the final model, measured once",
    "test_acc_last": "test acc after the last epoch (the final weights)",
    "val_acc_last": "val acc after the last epoch (the final weights)",
    "epochs_to_99": "first epoch with test acc >= 99%",
}
PUBLISHED_TEXT_KEYS = ("protocol", "source")


@dataclass(frozen=True)
class Cell:
    """One configuration of a suite (before seeds are applied)."""

    name: str
    config: TrainConfig


@dataclass(frozen=True)
class Figure:
    """One figure a seed published for one cell: `metric` (a PUBLISHED_METRICS key) = `value`."""

    cell: str
    metric: str
    value: float
    note: str = ""


@dataclass(frozen=True)
class Published:
    """A seed's published figures and how it measured them (the suite's `[published]`)."""

    protocol: str
    source: str
    figures: tuple[Figure, ...]

    def of(self, cell: str) -> list[Figure]:
        return [f for f in self.figures if f.cell == cell]

    @property
    def headline(self) -> str:
        """The metric shown for a cell the seed published nothing for: the first one used."""
        used = {f.metric for f in self.figures}
        return next(m for m in PUBLISHED_METRICS if m in used)


@dataclass(frozen=True)
class SuiteBudget:
    """The constraints a suite's project set itself (its `[budget]`), for `mnistlab report`."""

    max_params: int
    max_epochs: int
    target: float  # val accuracy, %


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cells: tuple[Cell, ...]
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    seeds: int = 1  # seeds per config when the command line does not say
    published: Published | None = None  # the seed's own figures; no run depends on them
    budget: SuiteBudget | None = None  # its project's constraints; no run depends on them

    def with_overrides(self, **overrides: Any) -> Suite:
        """The same suite with some config values forced (e.g. epochs, train_subset)."""
        if not overrides:
            return self
        # layered as every run is: a shortened run keeps its clean tail and SWA inside it
        cells = tuple(Cell(c.name, override(c.config, **overrides)) for c in self.cells)
        return dataclasses.replace(self, cells=cells)

    def config_keys(self) -> set[str]:
        """Each cell's config hash with its seed set to 0: what a stored run's
        `results.config_key` must equal to be one of this suite's configs as it is now."""
        return {c.config.replace(seed=0).config_hash() for c in self.cells}

    def runs(self, seeds: int) -> list[Cell]:
        """Every (config, seed) pair: seeds 0..seeds-1 of every cell."""
        return [Cell(c.name, c.config.replace(seed=s)) for c in self.cells for s in range(seeds)]


def current_config_keys(suite_name: str | None) -> set[str] | None:
    """The config keys of a built-in suite as it is now; None for any other study."""
    path = builtin_suites().get(suite_name or "")
    return None if path is None else load_suite(path).config_keys()


def builtin_suite_dir() -> Path:
    return Path(str(resources.files("mnistlab.experiments") / "suites"))


def builtin_suites() -> dict[str, Path]:
    return {path.stem: path for path in sorted(builtin_suite_dir().glob("*.toml"))}


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name, or a user's suite file by path."""
    text = str(name_or_path)
    builtins = builtin_suites()
    path = builtins.get(text, Path(text))
    if text not in builtins and path.suffix != ".toml" and not path.exists():
        raise choices_error("suite", text, [*builtins, "PATH.toml"])
    data = read_toml(path)
    try:
        # a model file named in the suite is relative to the suite's folder
        return parse_suite(data, source=str(path), base_dir=path.parent)
    except ConfigError as error:
        raise ConfigError(_with_line(str(error), path)) from None


def _with_line(message: str, path: Path) -> str:
    """Prefix the file and, when the message names a key, the line where that key is written."""
    if not message.startswith(str(path)):
        message = f"{path}: {message}"
    keys = re.findall(
        r"(?:unknown key '|^|: )(\w+) must|unknown key '(\w+)'|no cell '(\w+)'", message
    )
    names = [name for pair in keys for name in pair if name]
    if names:
        lines = path.read_text(errors="replace").splitlines()
        pattern = re.compile(rf"(^|[\s{{,]){re.escape(names[0])}\s*=")
        for number, line in enumerate(lines, start=1):
            if pattern.search(line):
                return message.replace(str(path), f"{path}:{number}", 1)
    return message


def parse_suite(data: dict[str, Any], *, source: str, base_dir: Path | None = None) -> Suite:
    _check_keys(data, SUITE_KEYS, source)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    base = _table(data.get("base", {}), f"{source} [base]")
    groups = data.get("groups", [])
    if not isinstance(groups, list) or not groups:
        raise ConfigError(f"{source}: needs at least one [[groups]] table")
    cells: list[Cell] = []
    for index, group in enumerate(groups):
        where = f"{source} groups[{index}]"
        group = _table(group, where)
        _check_keys(group, GROUP_KEYS, where)
        cells.extend(_expand_group(base, group, where, base_dir))
    names = [c.name for c in cells]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: run names repeat: {', '.join(duplicates)}")
    seeds = _positive_int(data.get("seeds", 1), "seeds", source)
    published = None
    if "published" in data:
        published = _published(data["published"], names, f"{source} [published]")
    budget = _budget(data["budget"], f"{source} [budget]") if "budget" in data else None
    description = str(data.get("description", ""))
    return Suite(
        name, description, tuple(cells), source, seeds=seeds, published=published, budget=budget
    )


def _budget(data: Any, where: str) -> SuiteBudget:
    data = _table(data, where)
    _check_keys(data, BUDGET_KEYS, where)
    missing = [key for key in BUDGET_KEYS if key not in data]
    if missing:
        raise ConfigError(f"{where}: needs {', '.join(missing)}")
    max_params, max_epochs = (_positive_int(data[k], k, where) for k in BUDGET_KEYS[:2])
    target = data["target"]
    if not isinstance(target, int | float) or isinstance(target, bool) or not 0 < target <= 100:
        raise ConfigError(f"{where}: target must be a val accuracy in (0, 100], got {target!r}")
    return SuiteBudget(max_params, max_epochs, float(target))


def _positive_int(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def _published(data: Any, cells: list[str], where: str) -> Published:
    """`[published]`: protocol and source in words, then `cell = {metric = figure, ...}`."""
    data = _table(data, where)
    texts = {}
    for key in PUBLISHED_TEXT_KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        texts[key] = value.strip()
    figures: list[Figure] = []
    for cell, values in data.items():
        if cell in PUBLISHED_TEXT_KEYS:
            continue
        if cell not in cells:
            raise ConfigError(f"{where}: no cell {cell!r} in this suite; cells: {', '.join(cells)}")
        values = dict(_table(values, f"{where}.{cell}"))
        note = values.pop("note", "")
        if not isinstance(note, str):
            raise ConfigError(f"{where}.{cell}: note must be a string")
        if not values:
            raise ConfigError(f"{where}.{cell}: no figure; metrics: {', '.join(PUBLISHED_METRICS)}")
        for metric, value in values.items():
            if metric not in PUBLISHED_METRICS:
                valid = ", ".join([*PUBLISHED_METRICS, "note"])
                raise ConfigError(f"{where}.{cell}: unknown key {metric!r}; valid keys: {valid}")
            figures.append(Figure(cell, metric, _figure(metric, value, f"{where}.{cell}"), note))
    if not figures:
        raise ConfigError(f"{where}: no figure for any cell")
    order = {name: index for index, name in enumerate(cells)}
    metrics = list(PUBLISHED_METRICS)
    figures.sort(key=lambda f: (order[f.cell], metrics.index(f.metric)))
    return Published(texts["protocol"], texts["source"], tuple(figures))


def _figure(metric: str, value: Any, where: str) -> float:
    if metric == "epochs_to_99":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {metric} must be a positive integer, got {value!r}")
        return float(value)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise ConfigError(f"{where}: {metric} must be an accuracy in %, 0 to 100, got {value!r}")
    return float(value)


def _expand_group(
    base: dict[str, Any], group: dict[str, Any], where: str, base_dir: Path | None
) -> list[Cell]:
    group_name = group.get("name")
    if not isinstance(group_name, str) or not group_name:
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    shared = merge_tables(base, _table(group.get("set", {}), f"{where}.set"))
    variants = group.get("variants") or [{}]
    if not isinstance(variants, list):
        raise ConfigError(f"{where}: 'variants' must be a list of tables")
    axes = _table(group.get("axes", {}), f"{where}.axes")
    labels = _table(group.get("axis_labels", {}), f"{where}.axis_labels")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.axes: {key} must be a non-empty list")
    cells = []
    for variant in variants:
        variant = dict(_table(variant, f"{where}.variants"))
        variant_name = variant.pop("name", "")
        for point in itertools.product(*axes.values()):
            values = merge_tables(shared, variant)
            suffix = []
            for key, value in zip(axes, point, strict=True):
                values = merge_tables(values, {key: value})
                suffix.append(f"{labels.get(key, key)}{_label(value)}")
            name = "_".join(part for part in (group_name, variant_name, *suffix) if part)
            values.setdefault("name", name)
            cells.append(Cell(name, _config(values, f"{where} ({name})", base_dir)))
    return cells


def _config(values: dict[str, Any], where: str, base_dir: Path | None) -> TrainConfig:
    # recipe expansion, model-option shortcuts and model references: the one spec of a run
    config = layer_config(values, base_dir=base_dir, source=where)
    try:
        build_model(config)  # a bad model name or option fails here, not hours into the grid
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return config


def _label(value: Any) -> str:
    return str(value).replace(".", "p") if isinstance(value, float) else str(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _check_keys(data: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")
