"""The `mnistlab` command line: it parses arguments and calls the library, nothing more.

Every user error (bad flag value, corrupted data, unknown name) ends as one line on stderr and
exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, get_type_hints

from mnistlab import __version__
from mnistlab.config import FIELD_HELP, TrainConfig, coerce
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.experiments import DEFAULT_STORE

Handler = Callable[[argparse.Namespace], int]
USER_OS_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with the valid choices argparse already names)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _console() -> Any:
    from rich.console import Console

    # piped into a file, tables keep their full width instead of wrapping at 80 columns
    return Console() if sys.stdout.isatty() else Console(width=200)


# ---------------------------------------------------------------------------------------------
# data


def cmd_data(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist, load_mnist

    directory = ensure_mnist(args.data_dir, download=not args.no_download)
    data = load_mnist(directory, download=False)
    print(f"MNIST verified (md5 of all four IDX files) in {directory}")
    print(
        f"images {tuple(data.images.shape)} {data.images.dtype}, labels {tuple(data.labels.shape)}"
        " (official 60k train, then official 10k test)"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# models


def cmd_models(args: argparse.Namespace) -> int:
    from mnistlab.models import list_models

    infos = list_models()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": i.name,
                        "params": i.params,
                        "seed": i.seed,
                        "description": i.description,
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return 0
    from rich.table import Table

    table = Table(title="mnistlab models")
    for column, justify in (
        ("name", "left"),
        ("params", "right"),
        ("seed", "left"),
        ("description", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for info in infos:
        table.add_row(info.name, f"{info.params:,}", info.seed, info.description)
    _console().print(table)
    return 0


# ---------------------------------------------------------------------------------------------
# train


def _parse_list(kind: type) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            return [kind(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__}s, got {text!r}"
            ) from None

    return parse


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    value: Any = raw
    lowered = raw.lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    return key, value


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults are None so only given flags override a file."""
    defaults = TrainConfig()
    types = get_type_hints(TrainConfig)
    group = parser.add_argument_group("run configuration (override --config)")
    for spec in fields(TrainConfig):
        name, kind = spec.name, types[spec.name]
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        help_text = f"{FIELD_HELP.get(name, '')} (default: {default!r})"
        if name == "model_options":
            group.add_argument(
                "--model-opt",
                dest=name,
                action="append",
                type=_parse_option,
                metavar="KEY=VALUE",
                help=FIELD_HELP[name],
            )
        elif kind is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif kind == tuple[int, ...]:
            group.add_argument(flag, dest=name, type=_parse_list(int), help=help_text)
        elif kind == tuple[float, ...]:
            group.add_argument(flag, dest=name, type=_parse_list(float), help=help_text)
        else:
            group.add_argument(flag, dest=name, type=kind, help=help_text)
    # shortcuts for the model options every seed model shares
    group.add_argument("--dropout", type=float, help="model option dropout_p")
    group.add_argument("--activation", help="model option activation (relu, silu, gelu)")
    group.add_argument(
        "--bn",
        dest="use_bn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="model option use_bn (BatchNorm after convs)",
    )
    group.add_argument("--width", type=float, help="model option width (channel multiplier)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the --config file, then the flags given on the command line."""
    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(TrainConfig.from_toml(args.config).to_dict())
    field_set = {spec.name for spec in fields(TrainConfig)}
    for name in field_set - {"model_options"}:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    options = dict(values.get("model_options", {}))
    for key, value in getattr(args, "model_options", None) or []:
        options[key] = value
    for key, flag in (
        ("dropout_p", "dropout"),
        ("activation", "activation"),
        ("use_bn", "use_bn"),
        ("width", "width"),
    ):
        if getattr(args, flag, None) is not None:
            options[key] = getattr(args, flag)
    values["model_options"] = options
    return TrainConfig.from_dict(coerce(values, source="flags"))


def default_out_dir(name: str, root: Path = Path("runs")) -> Path:
    """runs/NAME, or runs/NAME-2, -3 ... so an earlier run is never overwritten."""
    candidate = root / name
    index = 2
    while candidate.exists():
        candidate = root / f"{name}-{index}"
        index += 1
    return candidate


def check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not empty; choose a new directory")


def cmd_train(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist, split_mnist
    from mnistlab.engine.build import build_model
    from mnistlab.engine.trainer import train_run
    from mnistlab.models import count_params

    config = config_from_args(args)
    build_model(config)  # fail on a bad model name/option before touching data
    out = Path(args.out) if args.out else default_out_dir(config.name)
    check_out_dir(out)
    data = load_mnist(args.data_dir, download=not args.no_download)
    splits = split_mnist(
        data,
        val_size=config.val_size,
        seed=config.split_seed,
        train_subset=config.train_subset or None,
    )
    params = count_params(build_model(config))
    print(
        f"{config.name}: model {config.model} ({params:,} params), "
        f"train {splits.train_images.shape[0]:,} / val {splits.val_images.shape[0]:,} / "
        f"test {splits.test_images.shape[0]:,}, out {out}"
    )
    result = train_run(config, splits, out, progress=not args.no_progress and sys.stderr.isatty())
    summary = result.summary
    if summary["state"] == "diverged":
        print(f"run diverged at epoch {summary['diverged_epoch']}; results in {out}")
        return 1
    print(
        f"done in {summary['seconds']:.0f}s: best epoch {summary['best_epoch']} "
        f"(chosen on val), val_acc {summary['val_acc']:.2f}%, test_acc {summary['test_acc']:.2f}%"
    )
    print(f"run directory: {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# suites, grid, worker, results


def cmd_suites(args: argparse.Namespace) -> int:
    from mnistlab.experiments.suites import builtin_suites, load_suite

    for name in builtin_suites():
        suite = load_suite(name)
        print(f"{name:10} {len(suite.cells):3} configs  {suite.description}")
        if args.verbose:
            for cell in suite.cells:
                print(f"    {cell.name}")
    return 0


def _grid_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for key in ("epochs", "train_subset", "val_size", "device"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    return overrides


def _check_count(flag: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be > 0, got {value}")


def cmd_grid(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.runner import enqueue_suite
    from mnistlab.experiments.store import RunStore
    from mnistlab.experiments.suites import load_suite

    _check_count("--seeds", args.seeds)
    _check_count("--workers", args.workers)
    suite = load_suite(args.suite).with_overrides(**_grid_overrides(args))
    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    store = RunStore(args.store)
    added = enqueue_suite(store, suite, args.seeds)
    total = len(suite.cells) * args.seeds
    print(
        f"suite {suite.name}: {total} runs ({len(suite.cells)} configs x {args.seeds} seeds), "
        f"{added} newly queued, store {args.store}, {args.workers} worker(s)"
    )
    return _run_and_report(store, suite.name, args, data_dir)


def cmd_worker(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.store import RunStore

    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    store = RunStore(args.store)
    return _run_and_report(store, args.suite, args, data_dir)


def _run_and_report(store: Any, suite: str, args: argparse.Namespace, data_dir: Path) -> int:
    from mnistlab.experiments.runner import run_grid

    outcome = run_grid(
        store,
        suite,
        workers=args.workers,
        runs_root=Path(args.runs_dir),
        data_dir=data_dir,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print(
        f"{suite}: {outcome.finished} finished, {outcome.diverged} diverged, "
        f"{outcome.failed} failed in {outcome.seconds:.0f}s; "
        f"see `mnistlab results --store {store.url} --suite {suite}`"
    )
    return 0 if outcome.failed == 0 else 1


def cmd_results(args: argparse.Namespace) -> int:
    import csv

    from mnistlab.experiments.results import RUN_FIELDS, config_rows, run_rows
    from mnistlab.experiments.store import RunStore

    store = RunStore(args.store, heartbeat=False)
    suites = [args.suite] if args.suite else store.suites()
    records = []
    for suite in suites:
        records.extend(store.records(store.study(suite, create=False)))
    runs = run_rows(records)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if args.csv:
        writer = csv.DictWriter(
            sys.stdout, fieldnames=[*RUN_FIELDS, "trial", "aliases"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(runs)
        return 0
    from rich.table import Table

    console = _console()
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
    for row in config_rows(records):
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
    return 0


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mnistlab",
        description="Reproducible, honest and fast experiments with tiny CNNs on MNIST.",
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def data_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="directory with the four MNIST IDX files (.gz or not); "
            "default: $MNISTLAB_DATA or ~/.cache/mnistlab/mnist",
        )
        sub.add_argument(
            "--no-download",
            action="store_true",
            help="never download; fail if the files are not found",
        )

    sub = commands.add_parser("data", help="find or download MNIST and verify its md5 sums")
    data_flags(sub)
    sub.set_defaults(handler=cmd_data)

    sub = commands.add_parser("models", help="list the registered models and their params")
    sub.add_argument("--json", action="store_true", help="print a JSON list")
    sub.set_defaults(handler=cmd_models)

    sub = commands.add_parser(
        "train",
        help="train one model (the default config is a good recipe for `tiny`)",
        description="Train one model. Values come from the defaults, then --config, then flags. "
        "The best epoch is chosen on the validation split; the test set is "
        "evaluated once, on those weights.",
    )
    sub.add_argument("--config", type=Path, help="TOML file with run configuration keys")
    sub.add_argument("--out", help="run directory (default: runs/NAME, never overwritten)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    data_flags(sub)
    _add_config_flags(sub)
    sub.set_defaults(handler=cmd_train)

    sub = commands.add_parser("suites", help="list the built-in experiment suites")
    sub.add_argument("-v", "--verbose", action="store_true", help="also list every config")
    sub.set_defaults(handler=cmd_suites)

    def store_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--store",
            default=DEFAULT_STORE,
            help="Optuna storage URL: a SQLite file, or postgresql://... to share "
            f"one grid between machines (default: {DEFAULT_STORE})",
        )

    def worker_flags(sub: argparse.ArgumentParser) -> None:
        store_flag(sub)
        sub.add_argument(
            "--workers",
            type=int,
            default=1,
            help="local worker processes sharing the cores (default: 1)",
        )
        sub.add_argument(
            "--runs-dir", default="runs", help="root of the per-run directories (default: runs)"
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bars")
        data_flags(sub)

    sub = commands.add_parser(
        "grid",
        help="run a suite's grid (what is not done yet) into the store",
        description="Queue every config x seed of a suite that the store does not already hold, "
        "then train them. Re-running resumes; nothing stored is overwritten.",
    )
    sub.add_argument("suite", help="built-in suite name (see `mnistlab suites`) or PATH.toml")
    sub.add_argument("--seeds", type=int, default=1, help="seeds per config (default: 1)")
    sub.add_argument("--epochs", type=int, help="override every config's epochs")
    sub.add_argument("--train-subset", type=int, help="override: train on the first N images")
    sub.add_argument("--val-size", type=int, help="override the validation size")
    sub.add_argument("--device", help="override the device (auto, cpu, cuda, mps)")
    worker_flags(sub)
    sub.set_defaults(handler=cmd_grid)

    sub = commands.add_parser("worker", help="join a grid queued in a shared store")
    sub.add_argument("--suite", required=True, help="suite name as stored")
    worker_flags(sub)
    sub.set_defaults(handler=cmd_worker)

    sub = commands.add_parser("results", help="results tables from the store")
    store_flag(sub)
    sub.add_argument("--suite", help="only this suite (default: all in the store)")
    output = sub.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="per-run JSON list")
    output.add_argument("--csv", action="store_true", help="per-run CSV")
    sub.add_argument("--runs", action="store_true", help="also print the per-run table")
    sub.set_defaults(handler=cmd_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except MnistlabError as error:
        print(f"mnistlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnistlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        if error.errno not in USER_OS_ERRORS:
            raise
        # disk full, read-only or forbidden output: earlier files are intact (atomic writes)
        where = f" {error.filename}" if error.filename else ""
        print(
            f"mnistlab {args.command}: error: cannot write{where}: {error.strerror}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
