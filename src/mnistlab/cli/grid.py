"""`suites`, `grid`, `worker`, `results`, `tune`: many runs in a store, resumable and shared."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mnistlab.cli.common import check_count, data_flags, rich_console, store_flag
from mnistlab.config import DEVICES, TrainConfig
from mnistlab.errors import ConfigError, choices_error
from mnistlab.records import RunStatus

# exit code when --no-wait stops while other processes still hold runs
EXIT_STILL_RUNNING = 3


def worker_flags(sub: argparse.ArgumentParser) -> None:
    store_flag(sub)
    sub.add_argument(
        "--trust",
        action="append",
        metavar="FILE.py",
        help="a model file this process may run when a queued run names it (matched by "
        "sha256; repeatable). Runs naming other user code are left for others.",
    )
    sub.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes sharing the cores (default: 1)",
    )
    sub.add_argument(
        "--threads",
        type=int,
        help="torch threads per worker (default: cores // workers). On cores shared with "
        "other work, use 1: a worker whose threads wait on each other while another process "
        "holds a core ran its epochs 4-9x slower",
    )
    sub.add_argument(
        "--runs-dir",
        help="root of the per-run directories (default: beside a SQLite store, in its folder; "
        "./runs for a PostgreSQL one)",
    )
    sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="with nothing left to claim, exit (code 3) instead of waiting for runs other "
        "processes hold",
    )
    data_flags(sub)


def check_worker_flags(args: argparse.Namespace) -> None:
    """One-line errors for worker_flags' counts, before anything is queued or loaded."""
    check_count("--workers", args.workers)
    if args.threads is not None:
        check_count("--threads", args.threads)


def check_device(name: str | None) -> None:
    """An unusable --device is one error before anything is queued, not one failed run each
    (seen: `tune --device cuda` without a GPU failed and counted every trial)."""
    if name is not None:
        from mnistlab.engine.device import resolve_device

        if name not in DEVICES:
            raise choices_error("device", name, DEVICES)
        resolve_device(name)


def cmd_suites(args: argparse.Namespace) -> int:
    from mnistlab.experiments.suites import builtin_suites, load_suite

    if args.show is not None:
        paths = builtin_suites()
        if args.show not in paths:
            raise choices_error("suite", args.show, list(paths))
        # the file as shipped, comments and all: a start for a suite of your own
        sys.stdout.write(paths[args.show].read_text())
        return 0
    for name in builtin_suites():
        suite = load_suite(name)
        print(f"{name:10} {len(suite.cells):3} configs  {suite.description}")
        if args.verbose:
            for cell in suite.cells:
                print(f"    {cell.name}")
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    from importlib import resources

    source = resources.files("mnistlab") / "examples"
    names = sorted(entry.name for entry in source.iterdir() if entry.name != "__init__.py"
                   and not entry.name.startswith((".", "__")))  # fmt: skip
    clashes = [name for name in names if (args.dir / name).exists()]
    if clashes:
        raise ConfigError(
            f"{args.dir} already has {', '.join(clashes)}; choose another directory (nothing "
            "was copied)"
        )
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        (args.dir / name).write_bytes((source / name).read_bytes())
    print(f"copied {', '.join(names)} to {args.dir}")
    return 0


def _grid_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for key in ("epochs", "train_subset", "val_size", "device"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return overrides


def cmd_grid(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.runner import enqueue_suite, top_configs
    from mnistlab.experiments.store import RunStore
    from mnistlab.experiments.suites import load_suite

    check_worker_flags(args)
    check_device(args.device)
    suite = load_suite(args.suite).with_overrides(**_grid_overrides(args))
    seeds = suite.seeds if args.seeds is None else args.seeds
    check_count("--seeds", seeds)
    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    store = RunStore(args.store)
    if args.top is not None:
        check_count("--top", args.top)
        suite = top_configs(store, suite, args.top)
    added = enqueue_suite(store, suite, seeds)
    total = len(suite.cells) * seeds
    print(
        f"suite {suite.name}: {total} runs ({len(suite.cells)} configs x {seeds} seeds), "
        f"{added} newly queued, store {args.store}, run directories under "
        f"{runs_root(args)}, {args.workers} worker(s)"
    )
    cells = {cell.config.config_hash() for cell in suite.runs(seeds)}
    trusted = _trusted(args, [cell.config for cell in suite.cells])
    return _run_and_report(store, suite.name, args, data_dir, cells, trusted)


def runs_root(args: argparse.Namespace) -> Path:
    """--runs-dir, else beside the store: a SQLite file's folder (the default store,
    runs/mnistlab.db, keeps its runs in runs/), else ./runs."""
    if args.runs_dir:
        return Path(args.runs_dir)
    prefix = "sqlite:///"
    if args.store.startswith(prefix) and args.store[len(prefix) :] not in ("", ":memory:"):
        return Path(args.store[len(prefix) :]).parent
    return Path("runs")


def _trusted(args: argparse.Namespace, configs: list[TrainConfig]) -> Any:
    """The user model code this process was given: its suite's files and --trust FILE."""
    from mnistlab.run.trust import TrustedModels

    return TrustedModels.of(configs, [Path(f) for f in getattr(args, "trust", None) or []])


def cmd_worker(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.store import RunStore

    check_worker_flags(args)
    name, configs = args.suite, []
    if args.suite.endswith(".toml"):
        # the suite file this worker was given: its name, and the model files it may run
        from mnistlab.experiments.suites import load_suite

        suite = load_suite(args.suite)
        name, configs = suite.name, [cell.config for cell in suite.cells]
    trusted = _trusted(args, configs)
    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    store = RunStore(args.store)
    return _run_and_report(store, name, args, data_dir, trusted=trusted)


def _run_and_report(
    store: Any,
    suite: str,
    args: argparse.Namespace,
    data_dir: Path,
    cells: Any = None,
    trusted: Any = None,
) -> int:
    """Exit 0 only when every asked cell (`cells`; `worker`: the whole study) is finished or
    diverged; 1 when some failed; EXIT_STILL_RUNNING for --no-wait with runs held elsewhere."""
    from mnistlab.experiments.runner import run_grid
    from mnistlab.experiments.tracking import open_tracker

    tracker = open_tracker(getattr(args, "track", None), parent=f"grid {suite}")
    try:
        outcome = run_grid(
            store,
            suite,
            workers=args.workers,
            threads=args.threads,
            runs_root=runs_root(args),
            data_dir=data_dir,
            progress=not args.no_progress and sys.stderr.isatty(),
            tracker=tracker,
            cells=cells,
            wait=not args.no_wait,
            trusted=trusted,
            device=getattr(args, "device", None) or "auto",
        )
    finally:
        if tracker is not None:
            tracker.close()
    retried = f", {outcome.retried} retried after a worker died" if outcome.retried else ""
    print(
        f"{suite}: {outcome.finished} finished, {outcome.diverged} diverged, "
        f"{outcome.failed} failed in {outcome.seconds:.0f}s{retried}; "
        f"see `mnistlab results --store {store.url} --suite {suite}`"
    )
    state = outcome.progress
    print(f"{suite}: {state.done} of {state.total} runs done (finished or diverged)")
    for line in state.failed:
        print(f"  failed, not queued: {line}")
    if state.failed:
        print(f"  run `mnistlab grid` again to retry the {len(state.failed)} failed run(s)")
        return 1
    if outcome.refused:
        print(
            f"{suite}: {len(outcome.refused)} queued run(s) name model code this process was "
            "not given (left for others): " + ", ".join(outcome.refused)
        )
        return 1
    if not state.complete:
        print(f"{suite}: still running elsewhere (--no-wait):")
        for holder in state.held:
            print(f"  {holder.describe()}")
        if state.waiting:
            print(f"  {state.waiting} run(s) queued")
        return EXIT_STILL_RUNNING
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    import csv

    from mnistlab.experiments.results import RUN_FIELDS, config_rows, run_rows
    from mnistlab.experiments.store import RunStore

    store = RunStore(args.store, heartbeat=False)
    suites = [args.suite] if args.suite else store.suites()
    records = []
    for suite in suites:
        records.extend(store.records(store.study(suite, create=False)))
    if args.epochs:
        return _print_epochs(args, records)
    runs = run_rows(records)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if args.csv:
        writer = csv.DictWriter(
            sys.stdout,
            fieldnames=[
                *RUN_FIELDS,
                "trial",
                "aliases",
                "held_by",
                "heartbeat_age",
                "grace_seconds",
            ],
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(runs)
        return 0
    from rich.table import Table

    console = rich_console()
    table = Table(title=f"results: {', '.join(suites)} (mean ± std over seeds; sorted by val acc)")
    columns = (
        "name",
        "seeds",
        "val_acc",
        "test_acc",
        "best_epoch",
        "params",
        "s/epoch",
        "model",
        "optimizer",
        "scheduler",
        "lr",
        "batch",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "name" else "right")
    rows = config_rows(records)
    for row in rows:
        seeds = str(row["seeds"]) + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        name = row["name"] + (f" (= {row['same_as']})" if row["same_as"] else "")
        table.add_row(
            name,
            seeds,
            row["val_acc"].format(),
            row["test_acc"].format(),
            row["best_epoch"].format(1),
            f"{row['params']:,}" if row["params"] else "–",
            row["seconds_per_epoch"].format(1),
            str(row["model"]),
            str(row["optimizer"]),
            str(row["scheduler"]),
            f"{row['lr']:g}",
            str(row["batch_size"]),
        )
    console.print(table)
    stale = _stale_rows(args.suite, rows)
    if stale:
        console.print(
            f"not {args.suite}'s configs as the suite is now (an earlier version of it, or "
            f"a grid with overrides): {', '.join(stale)}",
            markup=False,
        )
    if args.runs:
        runs_table = Table(title="runs")
        for column in ("trial", "name", "seed", "state", "val_acc", "test_acc", "best_epoch"):
            runs_table.add_column(column)
        for run in sorted(runs, key=lambda r: r["trial"]):
            runs_table.add_row(
                *(
                    str(run[c]) if run[c] is not None else "–"
                    for c in ("trial", "name", "seed", "state", "val_acc", "test_acc", "best_epoch")
                )
            )
        console.print(runs_table)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["state"]] = counts.get(run["state"], 0) + 1
    console.print("runs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    for run in sorted(runs, key=lambda r: r["trial"]):
        if run["state"] != RunStatus.RUNNING:
            continue
        age = run["heartbeat_age"]
        beat = (
            "no heartbeat"
            if age is None
            else f"heartbeat {age:.0f}s ago (stale after {run['grace_seconds']:g}s)"
        )
        held = run["held_by"] or "unknown holder"
        console.print(
            f"  running: {run['name']} s{run['seed']} (trial {run['trial']}): {held}, {beat}"
        )
    return 0


def _stale_rows(suite_name: str | None, rows: list[dict[str, Any]]) -> list[str]:
    """Rows that are none of a built-in suite's current configs; [] for other studies."""
    from mnistlab.experiments.results import stale_rows
    from mnistlab.experiments.suites import current_config_keys

    current = current_config_keys(suite_name)
    return [] if current is None else stale_rows(rows, current)


def _print_epochs(args: argparse.Namespace, records: list[Any]) -> int:
    import csv

    from mnistlab.experiments.results import EPOCH_FIELDS, config_key, epoch_tables
    from mnistlab.experiments.suites import current_config_keys

    current = current_config_keys(args.suite)
    if current is not None:  # a built-in suite: its configs as they are now
        records = [r for r in records if config_key(r.config) in current]
    tables = epoch_tables(records, args.epochs)
    if args.json:
        out = [{"seed": run.seed, "trial": run.number, "epochs": rows} for run, rows in tables]
        print(json.dumps(out, indent=2))
        return 0
    if args.csv:
        writer = csv.DictWriter(
            sys.stdout, fieldnames=["seed", "trial", *EPOCH_FIELDS], lineterminator="\n"
        )
        writer.writeheader()
        for run, rows in tables:
            writer.writerows({"seed": run.seed, "trial": run.number, **row} for row in rows)
        return 0
    from rich.table import Table

    console = rich_console()
    for run, rows in tables:
        title = f"{args.epochs} seed {run.seed} (trial {run.number}, {run.state})"
        table = Table(title=title)
        for field in EPOCH_FIELDS:
            table.add_column(field, justify="right")
        for row in rows:
            table.add_row(*(_cell(field, row[field]) for field in EPOCH_FIELDS))
        console.print(table)
        best = run.summary.get("best_epoch")
        if best:
            console.print(
                f"best epoch on val: {best}; test accuracy there, measured once: "
                f"{_cell('test_acc', run.summary.get('test_acc'))}%",
                markup=False,
            )
    return 0


def _cell(field: str, value: Any) -> str:
    if value is None:
        return "–"
    if field == "epoch":
        return str(value)
    if field == "lr":
        return f"{value:.3g}"
    if field.endswith("_loss"):
        return f"{value:.4f}"
    if field == "seconds":
        return f"{value:.1f}"
    return f"{value:.2f}"


def cmd_tune(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.engine.device import torch_threads
    from mnistlab.experiments.store import RunStore
    from mnistlab.experiments.tracking import open_tracker
    from mnistlab.experiments.tune import format_outcome, load_space, run_tune

    check_count("--trials", args.trials)
    for flag, value in (
        ("--max-params", args.max_params),
        ("--max-epochs", args.max_epochs),
        ("--threads", args.threads),
    ):
        if value is not None:
            check_count(flag, value)
    check_device(args.device)
    space = load_space(args.space)
    study = args.study or space.name
    store = RunStore(args.store)  # an unreachable store fails before anything slow
    tracker = open_tracker(args.track, parent=f"tune {study}")
    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    try:
        with torch_threads(args.threads):
            outcome = run_tune(
                store,
                space,
                args.trials,
                study_name=study,
                max_params=args.max_params,
                max_epochs=args.max_epochs,
                pruner=args.pruner,
                train_subset=args.train_subset,
                device=args.device,
                data_dir=data_dir,
                runs_root=runs_root(args),
                tracker=tracker,
                wait=not args.no_wait,
            )
    finally:
        if tracker is not None:
            tracker.close()
    for line in format_outcome(outcome):
        print(line)
    print(f"all trials: `mnistlab results --store {store.url} --suite {study} --runs`")
    # exit 0 only when the study holds its total, each finished, pruned or diverged
    if outcome.held:
        print(f"study {study}: still running elsewhere (--no-wait):")
        for holder in outcome.held:
            print(f"  {holder.describe()}")
        return EXIT_STILL_RUNNING
    if outcome.failed:
        print(f"study {study}: {outcome.failed} trial(s) failed with an error (see above)")
        return 1
    return 0


def add_commands(commands: Any) -> None:
    sub = commands.add_parser("suites", help="list the built-in experiment suites")
    sub.add_argument("-v", "--verbose", action="store_true", help="also list every config")
    sub.add_argument(
        "--show",
        metavar="NAME",
        help="print a built-in suite's TOML (to copy and edit: mnistlab grid PATH.toml)",
    )
    sub.set_defaults(handler=cmd_suites)

    sub = commands.add_parser(
        "examples",
        help="copy the example files (a model file, a suite, a search space, a notebook) to DIR",
        description="Copy the files docs/own-model.md uses (nets.py, own_suite.toml, "
        "own_space.toml, own_model.ipynb) into DIR; an existing file is never overwritten.",
    )
    sub.add_argument("dir", type=Path, help="where to put them (created if missing)")
    sub.set_defaults(handler=cmd_examples)

    sub = commands.add_parser(
        "grid",
        help="run a suite's grid (what is not done yet) into the store",
        description="Queue every config x seed of a suite that the store does not already hold, "
        "then train them. Re-running resumes; nothing stored is overwritten.",
    )
    sub.add_argument("suite", help="built-in suite name (see `mnistlab suites`) or PATH.toml")
    sub.add_argument(
        "--seeds", type=int, help="seeds per config, 0..N-1 (default: the suite's, else 1)"
    )
    sub.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="only the N distinct configs with the best seed-0 val accuracy in the store "
        "(e.g. --top 3 --seeds 3 after a one-seed pass; resumed, it picks the same N)",
    )
    sub.add_argument("--epochs", type=int, help="override every config's epochs")
    sub.add_argument("--train-subset", type=int, help="override: train on the first N images")
    sub.add_argument("--val-size", type=int, help="override the validation size")
    sub.add_argument("--device", help="override the device (auto, cpu, cuda, mps)")
    worker_flags(sub)
    sub.set_defaults(handler=cmd_grid)

    sub = commands.add_parser("worker", help="join a grid queued in a shared store")
    sub.add_argument(
        "--suite",
        required=True,
        help="suite name as stored, or the suite's PATH.toml (then the model files it names "
        "may run here)",
    )
    worker_flags(sub)
    sub.set_defaults(handler=cmd_worker)

    sub = commands.add_parser("results", help="results tables from the store")
    store_flag(sub)
    sub.add_argument("--suite", help="only this suite (default: all in the store)")
    output = sub.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="per-run JSON list")
    output.add_argument("--csv", action="store_true", help="per-run CSV")
    sub.add_argument("--runs", action="store_true", help="also print the per-run table")
    sub.add_argument(
        "--epochs",
        metavar="CONFIG",
        help="the per-epoch table (lr, train/val/test loss and accuracy) of each seed of CONFIG",
    )
    sub.set_defaults(handler=cmd_results)

    # MLflow tracking for every command that trains
    for name in ("train", "grid", "worker"):
        commands.choices[name].add_argument(
            "--track",
            choices=("mlflow",),
            help="also log runs to MLflow (needs pip install 'mnistlab[mlflow]')",
        )

    sub = commands.add_parser(
        "tune",
        help="search hyper-parameters with Optuna, pruning weak trials",
        description="An Optuna study over a search space: each trial trains one config; its "
        "val accuracy per epoch lets the pruner stop weak trials early. The objective is val "
        "accuracy; the best trial's test accuracy is only shown. Processes sharing one --store "
        "and --study (e.g. PostgreSQL, on many machines) split the trials.",
    )
    sub.add_argument("--space", required=True, help="built-in search space (budget8k) or PATH.toml")
    sub.add_argument(
        "--trials",
        type=int,
        required=True,
        help="trials the study should hold, all processes together (re-running resumes)",
    )
    sub.add_argument("--study", help="study name in the store (default: the space's name)")
    sub.add_argument("--max-params", type=int, help="cap every trial's model at this many params")
    sub.add_argument("--max-epochs", type=int, help="cap every trial's epochs")
    sub.add_argument(
        "--pruner",
        choices=("median", "hyperband", "none"),
        default="median",
        help="how weak trials are stopped early (default: median)",
    )
    sub.add_argument("--train-subset", type=int, help="train on the first N images (quick runs)")
    sub.add_argument("--device", help="override the device (auto, cpu, cuda, mps)")
    sub.add_argument(
        "--threads",
        type=int,
        help="torch threads for the trials (default: torch's, one per core; 1 on cores shared "
        "with other work, as for grid)",
    )
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="with every trial slot taken, exit (code 3) instead of waiting for trials other "
        "processes hold",
    )
    sub.add_argument(
        "--track",
        choices=("mlflow",),
        help="also log trials to MLflow (pip install 'mnistlab[mlflow]')",
    )
    store_flag(sub)
    sub.add_argument(
        "--runs-dir",
        help="root of the per-trial directories (default: beside a SQLite store, in its "
        "folder; ./runs for a PostgreSQL one)",
    )
    data_flags(sub)
    sub.set_defaults(handler=cmd_tune)
