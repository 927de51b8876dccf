"""The Python API, for notebooks and scripts: the same runs as the command line.

    import mnistlab
    mnistlab.summary("nets.py:Net", max_params=8000)
    run = mnistlab.train(Net, epochs=15, train_subset=5000)     # a class, a factory,
    run.val_acc, run.test_acc, run.best_epoch, run.history     # an nn.Module or a reference

`train` builds its config with `run.spec` (defaults, then `recipe`, then keyword values, as the
CLI does), holds out validation from the official training set with the config's split seed,
selects the epoch on validation and evaluates the official test set once. A model given as an
object rather than a reference is stored by its qualified name, with its source (when Python can
find it) copied into the run directory; the run record says plainly when it cannot.
"""

from __future__ import annotations

import hashlib
import inspect
import linecache
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError
from mnistlab.experiments import DEFAULT_STORE
from mnistlab.models.budget import BudgetFit, fit_to_budget
from mnistlab.models.reference import (
    call_factory,
    check_model,
    check_trainable_output,
    checked_options,
    definition,
    factory_options,
)
from mnistlab.models.registry import create_model
from mnistlab.models.summary import CheckItem, ModelCard, checklist, model_card, summary_record
from mnistlab.records import RunStatus
from mnistlab.run import layer_config
from mnistlab.run.directory import check_out_dir, default_out_dir

if TYPE_CHECKING:
    from mnistlab.experiments.results import ConfigRow, RunRow
from mnistlab.run.options import RunOptions

ModelLike = str | nn.Module | type[nn.Module] | Callable[..., nn.Module]


#: decimals an epoch's figures are shown with in `TrainResult.history` (the run directory's
#: epochs.csv and `rows` keep them in full)
HISTORY_DECIMALS = {"lr": 6, "train_loss": 4, "val_loss": 4, "train_acc": 2, "val_acc": 2,
                    "test_acc": 2, "seconds": 1}  # fmt: skip


class History(list):
    """Per-epoch rows with rounded floats, shown as a table (what `history` is without pandas)."""

    def __repr__(self) -> str:
        if not self:
            return "History([])"
        columns = list(self[0])
        cells = [[str(row.get(c, "")) for c in columns] for row in self]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(lines)


def history_table(rows: list[dict[str, Any]]) -> Any:
    """`rows` as a pandas DataFrame indexed by epoch when pandas is installed, else a History;
    floats rounded for reading (`HISTORY_DECIMALS`), columns that are all empty dropped."""
    rounded = [
        {
            key: round(value, HISTORY_DECIMALS.get(key, 4)) if isinstance(value, float) else value
            for key, value in row.items()
            if any(other.get(key) is not None for other in rows)
        }
        for row in rows
    ]
    try:
        import pandas
    except ImportError:
        return History(rounded)
    return pandas.DataFrame(rounded).set_index("epoch") if rounded else pandas.DataFrame()


@dataclass(frozen=True)
class TrainResult:
    """One finished run: its config, summary (the run record), per-epoch rows and the model
    with the weights chosen on validation (`model`; the run directory's best.pt)."""

    config: TrainConfig
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)  # per epoch, full precision
    run_dir: Path | None = None
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def history(self) -> Any:
        """Per-epoch figures as a table: a pandas DataFrame (pandas installed), else rows."""
        return history_table(self.rows)

    @property
    def val_acc(self) -> float | None:
        return self.summary.get("val_acc")

    @property
    def test_acc(self) -> float | None:
        return self.summary.get("test_acc")

    @property
    def best_epoch(self) -> int:
        return int(self.summary.get("best_epoch", 0))

    @property
    def params(self) -> int:
        return int(self.summary.get("params", 0))

    @property
    def state(self) -> str:
        return str(self.summary.get("state", ""))

    def plot(self) -> Any:
        """Loss and accuracy curves (train and val) per epoch, as a matplotlib Figure."""
        import matplotlib.pyplot as plt

        epochs = [row["epoch"] for row in self.rows]
        figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
        for key, label in (("train_loss", "train"), ("val_loss", "val")):
            loss_axis.plot(epochs, [row[key] for row in self.rows], marker=".", label=label)
        for key, label in (("train_acc", "train"), ("val_acc", "val")):
            acc_axis.plot(epochs, [row[key] for row in self.rows], marker=".", label=label)
        loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
        acc_axis.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for axis in (loss_axis, acc_axis):
            axis.legend()
            axis.grid(alpha=0.3)
        figure.tight_layout()
        return figure

    def __repr__(self) -> str:
        if self.state != RunStatus.FINISHED:
            return f"TrainResult({self.config.name}: {self.state}, run_dir={self.run_dir})"
        return (
            f"TrainResult({self.config.name}: {self.params:,} params, best epoch "
            f"{self.best_epoch} (on val), val_acc {self.val_acc:.2f}%, test_acc "
            f"{self.test_acc:.2f}%, run_dir={self.run_dir})"
        )


@dataclass(frozen=True)
class Summary:
    """`mnistlab summary` as an object: the per-layer card and the checklist."""

    model: str
    card: ModelCard
    checks: list[CheckItem]

    @property
    def params(self) -> int:
        return self.card.params

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **summary_record(self.card, self.checks)}

    def __str__(self) -> str:
        from mnistlab.models.summary import LAYER_COLUMNS, layer_rows

        rows = [list(LAYER_COLUMNS), *layer_rows(self.card)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(LAYER_COLUMNS))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        lines.append(f"total: {self.card.params:,} params, {self.card.macs:,} MACs per image")
        for item in self.checks:
            mark = "·" if item.ok is None else ("✓" if item.ok else "✗")
            lines.append(f"{mark} {item.name}: {item.detail}")
        lines += [f"note: {note}" for note in self.card.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / Jupyter display
        printer.text(str(self))


def _describe(model: Any) -> str:
    target = definition(model)
    return f"{target.__module__}:{target.__qualname__}"


# a class or function copied out of a script or notebook loses the script's imports; these are
# the ones a PyTorch model almost always uses, so the copy can rebuild it on its own
PROLOGUE = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"


def _source(model: Any) -> str:
    """The code that defines `model`, for the run directory's copy: the whole module file when
    it comes from an importable module (its helpers and imports come along); for a script or
    notebook (`__main__`, whose file may train or plot when run) the definition itself, or the
    text of the notebook cell that defined it. "" when Python finds neither: the run record
    then says so."""
    target = definition(model)
    if target.__module__ != "__main__":
        try:
            inspect.getsource(target)  # defined in that file (not built at run time)
            return Path(inspect.getsourcefile(target) or "").read_text()
        except (OSError, TypeError):
            return ""
    try:
        return PROLOGUE + inspect.getsource(target)
    except (OSError, TypeError):
        pass
    # IPython keeps each cell's text under the file name its code objects carry: find the
    # definition's first line there and take its block (not the rest of the cell)
    functions = [target] if inspect.isfunction(target) else list(vars(target).values())
    codes = [f.__code__ for f in functions if hasattr(f, "__code__")]
    if not codes or not (lines := linecache.getlines(codes[0].co_filename)):
        return ""
    first = min(code.co_firstlineno for code in codes) - 1
    keyword = "def" if inspect.isfunction(target) else "class"
    pattern = re.compile(rf"\s*{keyword}\s+{re.escape(target.__name__)}\b")
    for start in range(min(first, len(lines) - 1), -1, -1):
        if pattern.match(lines[start]):
            return PROLOGUE + "".join(inspect.getblock(lines[start:]))
    return ""


def _build_object(model: Any, options: dict[str, Any]) -> nn.Module | Callable[[], nn.Module]:
    """An nn.Module as given, or a zero-argument builder the trainer calls under the seed."""
    label = _describe(model)
    if isinstance(model, nn.Module):
        if options:
            raise ConfigError(
                f"model options {sorted(options)} need a class or factory, not a module"
            )
        check_model(label, model)
        check_trainable_output(label, model)
        return model
    if not callable(model):
        raise ConfigError(
            f"model must be a name, a reference like nets.py:Net, an nn.Module, an nn.Module "
            f"class or a function returning one; got {type(model).__name__}"
        )
    options = checked_options(label, *factory_options(model), options)
    probe = call_factory(label, model, options)
    check_model(label, probe)  # fails now, not after data loads
    check_trainable_output(label, probe)

    def build() -> nn.Module:
        return call_factory(label, model, options)

    return build


def _notebook_without_widgets() -> bool:
    """In Jupyter, rich draws its bar with ipywidgets; without them it prints a warning instead."""
    from importlib.util import find_spec

    from rich.console import Console

    return Console().is_jupyter and find_spec("ipywidgets") is None


def train(
    model: ModelLike = "tiny",
    *,
    recipe: str | None = None,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    threads: int | None = None,
    track: str | None = None,
    log: Callable[[str], None] | None = print,
    **config: Any,
) -> TrainResult:
    """Train one run, as `mnistlab train` does, and return its result.

    `model`: a registered name, `path/nets.py:Net`, `pkg.mod:make_net`, an nn.Module subclass
    or factory (built under the config's seed, `model_options=` passed to it; `max_params=`
    fits its `width` first, as `fit` does), or an nn.Module (trained as given: its
    initialisation is yours). `config`: any `TrainConfig` key (`epochs=15`, `lr=0.05`,
    `train_subset=2000`, `width=0.5`, ...). `out`, `data_dir`, `download`, `progress`,
    `threads` and `track` are the run options `mnistlab train` takes as flags
    (`run.options.RunOptions`); `out` defaults to runs/NAME, NAME the model's (a fresh
    runs/NAME-2, -3 ... when it exists), and an `out` given that holds files is refused.
    `log`: where the per-epoch lines go (they stay in a notebook cell's output after its
    progress bar is gone); None for silence.

    The result's `model` holds the weights chosen on validation, and so does an nn.Module you
    passed, after the call (the last epoch's weights stay in the run directory's last.pt)."""
    from mnistlab.data import load_mnist
    from mnistlab.engine.device import torch_threads
    from mnistlab.experiments.tracking import train_tracked
    from mnistlab.run.build import splits_for

    options = RunOptions(out, data_dir, download, progress, threads, track)
    layers: list[dict[str, Any]] = [{"recipe": recipe}] if recipe else []
    built: nn.Module | Callable[[], nn.Module] | None = None
    source: str | None = None
    named = {"name": _run_name(model)} if "name" not in config else {}
    if isinstance(model, str):
        layers.append({**named, **config, "model": model})
        run_config = layer_config(*layers, source="mnistlab.train")
    else:
        layers.append({**named, **config})
        values = layer_config(*layers, source="mnistlab.train").to_dict()
        if values["max_params"]:
            if isinstance(model, nn.Module):
                raise ConfigError(
                    "max_params needs the model's class or factory (to build it at several "
                    "widths), not an instance: pass the class"
                )
            fitted = fit_to_budget(model, values["max_params"], **values["model_options"])
            values["model_options"] = fitted.options
        source = _source(model)
        values["model"] = _describe(model)
        values["model_sha256"] = hashlib.sha256(source.encode()).hexdigest() if source else ""
        run_config = TrainConfig.from_dict(values)
        built = _build_object(model, dict(run_config.model_options))
    progress = options.progress
    if progress and _notebook_without_widgets():
        progress = False  # no bar can render there: the per-epoch lines are the progress
    if options.out is not None:
        run_dir = Path(options.out)
        check_out_dir(run_dir, flag="out=", fix="pass a new out=, or none for runs/NAME-N")
    else:
        run_dir = default_out_dir(run_config.name)
    data_path = Path(options.data_dir) if options.data_dir else None
    data = load_mnist(data_path, download=options.download)
    splits = splits_for(run_config, data)
    with torch_threads(options.threads):
        result = train_tracked(
            options.track,
            run_config,
            splits,
            run_dir,
            progress=progress,
            log=log,
            model=built,
            model_source=source,
        )
    selected = result.model
    if isinstance(built, nn.Module) and selected is not None:
        built.load_state_dict(selected.state_dict())  # the instance passed in ends as selected
        selected = built.eval()
    rows = [record.as_row() for record in result.epochs]
    return TrainResult(run_config, result.summary, rows, run_dir, selected)


def _run_name(model: Any) -> str:
    """A run's default name: the model's (`StudentNet`, `tiny`, `Net` for nets.py:Net)."""
    if isinstance(model, str):
        return model.rpartition(":")[2] or model
    target = definition(model)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", getattr(target, "__name__", "model"))


def summary(
    model: ModelLike,
    *,
    max_params: int = 0,
    epochs: int = 0,
    max_epochs: int = 0,
    **options: Any,
) -> Summary:
    """Per-layer table, totals and the seeds' checklist for any model (`mnistlab summary`)."""
    if isinstance(model, str):
        module = create_model(model, **options)
        label = model
    else:
        built = _build_object(model, options)
        module = built if isinstance(built, nn.Module) else built()
        label = _describe(model)
    card = model_card(module)
    items = checklist(card, max_params=max_params, epochs=epochs, max_epochs=max_epochs)
    return Summary(label, card, items)


def fit(
    model: str | Callable[..., nn.Module],
    max_params: int,
    *,
    option: str | None = None,
    **options: Any,
) -> BudgetFit:
    """The largest value of `option` (default `width`) keeping `model` under `max_params`:
    a name or reference, or a class or factory (defined in a notebook cell, say)."""
    return fit_to_budget(model, max_params, option=option, **options)


def grid(
    suite: str | Path,
    *,
    store: str = DEFAULT_STORE,
    seeds: int | None = None,
    workers: int = 1,
    runs_dir: str | Path = "runs",
    data_dir: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Run a suite's grid into the store (resumable, as `mnistlab grid`) and return its
    per-config results (`results`). `overrides`: config values forced on every run, e.g.
    `epochs=2, train_subset=2000`."""
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.runner import enqueue_suite, run_grid
    from mnistlab.experiments.store import RunStore
    from mnistlab.experiments.suites import load_suite
    from mnistlab.run.trust import TrustedModels

    loaded = load_suite(suite).with_overrides(**overrides)
    run_store = RunStore(store)
    enqueue_suite(run_store, loaded, loaded.seeds if seeds is None else seeds)
    directory = ensure_mnist(Path(data_dir) if data_dir else None)
    run_grid(
        run_store,
        loaded.name,
        workers=workers,
        runs_root=Path(runs_dir),
        data_dir=directory,
        progress=progress,
        log=lambda line: None,
        trusted=TrustedModels.of(cell.config for cell in loaded.cells),  # the suite's own files
        device=overrides.get("device", "auto"),
    )
    return results(loaded.name, store=store)


def results(
    suite: str, *, store: str = DEFAULT_STORE, runs: bool = False
) -> list[ConfigRow] | list[RunRow]:
    """Per-config rows (mean ± std over seeds), or per-run rows with `runs=True`."""
    from mnistlab.experiments.results import config_rows, run_rows
    from mnistlab.experiments.store import RunStore

    run_store = RunStore(store, heartbeat=False)
    records = run_store.records(run_store.study(suite, create=False))
    return run_rows(records) if runs else config_rows(records)


__all__ = ["Summary", "TrainResult", "fit", "grid", "results", "summary", "train"]
