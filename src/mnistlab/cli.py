"""The `mnistlab` command line: it parses arguments and calls the library, nothing more.

Every user error (bad flag value, corrupted data, unknown name) ends as one line on stderr and
exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, get_type_hints

from mnistlab import __version__
from mnistlab.config import FIELD_HELP, TrainConfig
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.experiments import DEFAULT_STORE
from mnistlab.recipes import RECIPES
from mnistlab.run.directory import check_out_dir, default_out_dir

Handler = Callable[[argparse.Namespace], int]
MODEL_REFERENCE_HELP = (
    "A model is a registered name (`mnistlab models`), path/to/nets.py:Net or "
    "package.module:make_net (an nn.Module class or a function returning one)."
)
INTERNAL_FIELDS = ("model_sha256",)  # set by mnistlab (run.spec), never by a flag
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


def _print_summary(title: str, card: Any, items: list[Any]) -> None:
    """The per-layer table and the checklist (`summary` and `fit`)."""
    from rich.table import Table

    from mnistlab.models.summary import LAYER_COLUMNS, layer_rows

    table = Table(title=title)
    for column in LAYER_COLUMNS:
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for cells in layer_rows(card):
        table.add_row(*cells)
    console = _console()
    console.print(table)
    for item in items:
        mark = "·" if item.ok is None else ("✓" if item.ok else "✗")
        console.print(f"  {mark} {item.name}: {item.detail}", highlight=False)


def cmd_summary(args: argparse.Namespace) -> int:
    from mnistlab.models import create_model, fit_to_budget
    from mnistlab.models.summary import checklist, format_macs, model_card, summary_record

    options = dict(args.model_options or [])
    if args.max_params is not None:
        _check_count("--max-params", args.max_params)
    for flag, value in (("--max-epochs", args.max_epochs), ("--epochs", args.epochs)):
        if value is not None:
            _check_count(flag, value)
    if args.fit:
        if args.max_params is None:
            raise ConfigError("--fit needs --max-params N")
        options = fit_to_budget(args.model, args.max_params, **options).options
    card = model_card(create_model(args.model, **options))
    items = checklist(
        card,
        max_params=args.max_params or 0,
        epochs=args.epochs or TrainConfig().epochs,
        max_epochs=args.max_epochs or 0,
    )
    if args.json:
        record = {"model": args.model, "options": options, **summary_record(card, items)}
        print(json.dumps(record, indent=2))
        return 0
    _print_summary(
        f"{args.model}: {card.params:,} params, {format_macs(card.macs)} MACs per image",
        card,
        items,
    )
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from mnistlab.models import create_model, fit_to_budget
    from mnistlab.models.summary import checklist, format_macs, model_card, summary_record

    _check_count("--max-params", args.max_params)
    options = dict(args.model_options or [])
    fit = fit_to_budget(args.model, args.max_params, option=args.option, **options)
    card = model_card(create_model(args.model, **fit.options))
    items = checklist(card, max_params=args.max_params)
    value = fit.options[fit.option]
    if args.json:
        record = {
            "model": fit.name,
            "max_params": args.max_params,
            "option": fit.option,
            fit.option: value,
            **summary_record(card, items),
            "options": fit.options,
        }
        if fit.option != "width":
            record["width"] = fit.width  # the fitted value under its usual name, too
        print(json.dumps(record, indent=2))
        return 0
    _print_summary(
        f"{fit.name} at {fit.option} {value:g}: {fit.params:,} params "
        f"(< {args.max_params:,}), {format_macs(card.macs)} MACs per image",
        card,
        items,
    )
    if fit.option == "width":
        flags = f"--max-params {args.max_params} (or --width {value:g})"
    else:
        flags = f"--model-opt {fit.option}={value}"
    print(f"use it: mnistlab train --model {fit.name} {flags}")
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
        if name in INTERNAL_FIELDS:
            continue
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
    """Defaults, then --recipe, then the --config file, then the flags given (`run.spec`)."""
    from mnistlab.run import MODEL_SHORTCUTS, layer_config

    layers: list[dict[str, Any]] = []
    if getattr(args, "recipe", None) is not None:
        layers.append({"recipe": args.recipe})
    base_dir = None
    if args.config is not None:
        layers.append(TrainConfig.from_toml(args.config).to_dict())
        if getattr(args, "model", None) is None:
            base_dir = Path(args.config).parent  # a model file named in it is relative to it
    flags: dict[str, Any] = {}
    for spec in fields(TrainConfig):
        value = getattr(args, spec.name, None)
        if spec.name != "model_options" and value is not None:
            flags[spec.name] = value
    flags["model_options"] = dict(getattr(args, "model_options", None) or [])
    for key in MODEL_SHORTCUTS:
        flag = "dropout" if key == "dropout_p" else key
        if getattr(args, flag, None) is not None:
            flags[key] = getattr(args, flag)
    layers.append(flags)
    return layer_config(*layers, base_dir=base_dir, source="flags")


def cmd_train(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist, split_mnist
    from mnistlab.experiments.tracking import train_tracked
    from mnistlab.models import count_params
    from mnistlab.run.build import build_model

    config = config_from_args(args)
    # built once before touching data: a bad model name/option fails fast
    params = count_params(build_model(config))
    out = Path(args.out) if args.out else default_out_dir(config.name)
    check_out_dir(out)
    data = load_mnist(args.data_dir, download=not args.no_download)
    splits = split_mnist(
        data,
        val_size=config.val_size,
        seed=config.split_seed,
        train_subset=config.train_subset or None,
    )
    print(
        f"{config.name}: model {config.model} ({params:,} params), "
        f"train {splits.train_images.shape[0]:,} / val {splits.val_images.shape[0]:,} / "
        f"test {splits.test_images.shape[0]:,}, out {out}"
    )
    # train_run itself, mirrored into MLflow when --track mlflow is given
    result = train_tracked(
        getattr(args, "track", None),
        config,
        splits,
        out,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
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

    _check_count("--workers", args.workers)
    suite = load_suite(args.suite).with_overrides(**_grid_overrides(args))
    seeds = suite.seeds if args.seeds is None else args.seeds
    _check_count("--seeds", seeds)
    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    store = RunStore(args.store)
    added = enqueue_suite(store, suite, seeds)
    total = len(suite.cells) * seeds
    print(
        f"suite {suite.name}: {total} runs ({len(suite.cells)} configs x {seeds} seeds), "
        f"{added} newly queued, store {args.store}, {args.workers} worker(s)"
    )
    cells = {cell.config.config_hash() for cell in suite.runs(seeds)}
    trusted = _trusted(args, [cell.config for cell in suite.cells])
    return _run_and_report(store, suite.name, args, data_dir, cells, trusted)


def _trusted(args: argparse.Namespace, configs: list[TrainConfig]) -> Any:
    """The user model code this process was given: its suite's files and --trust FILE."""
    from mnistlab.run.trust import TrustedModels

    return TrustedModels.of(configs, [Path(f) for f in getattr(args, "trust", None) or []])


def cmd_worker(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.store import RunStore

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


# exit code when --no-wait stops while other processes still hold runs
EXIT_STILL_RUNNING = 3


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

    _check_count("--fuse-max", args.fuse_max)
    tracker = open_tracker(getattr(args, "track", None), parent=f"grid {suite}")
    try:
        outcome = run_grid(
            store,
            suite,
            workers=args.workers,
            runs_root=Path(args.runs_dir),
            data_dir=data_dir,
            progress=not args.no_progress and sys.stderr.isatty(),
            tracker=tracker,
            fuse=args.fuse,
            fuse_max=args.fuse_max,
            cells=cells,
            wait=not args.no_wait,
            trusted=trusted,
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
    runs = run_rows(records)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if args.csv:
        writer = csv.DictWriter(
            sys.stdout,
            fieldnames=[*RUN_FIELDS, "trial", "aliases", "held_by", "heartbeat_age"],
            lineterminator="\n",
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
    from mnistlab.experiments.store import GRACE_SECONDS

    for run in sorted(runs, key=lambda r: r["trial"]):
        if run["state"] != "running":
            continue
        age = run["heartbeat_age"]
        beat = (
            "no heartbeat"
            if age is None
            else f"heartbeat {age:.0f}s ago (stale after {GRACE_SECONDS}s)"
        )
        held = run["held_by"] or "unknown holder"
        console.print(
            f"  running: {run['name']} s{run['seed']} (trial {run['trial']}): {held}, {beat}"
        )
    return 0


# ---------------------------------------------------------------------------------------------
# tune


def cmd_tune(args: argparse.Namespace) -> int:
    from mnistlab.data import ensure_mnist
    from mnistlab.experiments.store import RunStore
    from mnistlab.experiments.tracking import open_tracker
    from mnistlab.experiments.tune import format_outcome, load_space, run_tune

    _check_count("--trials", args.trials)
    for flag, value in (("--max-params", args.max_params), ("--max-epochs", args.max_epochs)):
        if value is not None:
            _check_count(flag, value)
    space = load_space(args.space)
    study = args.study or space.name
    store = RunStore(args.store)  # an unreachable store fails before anything slow
    tracker = open_tracker(args.track, parent=f"tune {study}")
    data_dir = ensure_mnist(args.data_dir, download=not args.no_download, log=print)
    try:
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
            runs_root=Path(args.runs_dir),
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


# ---------------------------------------------------------------------------------------------
# report


def cmd_report(args: argparse.Namespace) -> int:
    import shlex

    from mnistlab.reports.build import write_report

    # the command exactly as typed, for the report's provenance block
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    paths = write_report(
        args.store,
        args.suite,
        args.out,
        max_params=args.max_params,
        max_epochs=args.max_epochs,
        target=args.target,
        top_k=args.top_k,
        command=command,
        data_dir=args.data_dir,
        download=not args.no_download,
        device=args.device,
    )
    print(f"report written: {paths[0]} and {paths[1]} ({len(paths) - 2} images)")
    return 0


# ---------------------------------------------------------------------------------------------
# predict, export, serve (use a trained model)


def _load_for_inference(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(model, config, label) from --checkpoint PATH or --pretrained NAME (default: default)."""
    from mnistlab.models import count_params

    if args.checkpoint is not None:
        from mnistlab.run.checkpoint import load_checkpoint

        loaded = load_checkpoint(args.checkpoint)
        model, config = loaded.model, loaded.config
        for note in loaded.warnings:
            print(f"mnistlab: warning: {note}", file=sys.stderr)
        val = loaded.info.get("val_acc")
        detail = f", val {val:.2f}%" if isinstance(val, int | float) else ""
        source = str(args.checkpoint)
    else:
        from mnistlab import pretrained

        name = args.pretrained or "default"
        model, config = pretrained.load(name)
        record = pretrained.info(name)
        detail = f", val {record['val_acc']:.2f}%, test {record['test_acc']:.2f}%"
        source = f"pretrained {name!r}"
    label = f"{source} ({config.model}, {count_params(model):,} params{detail})"
    return model, config, label


def cmd_eval(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist, split_mnist
    from mnistlab.engine.loop import evaluate

    model, config, label = _load_for_inference(args)
    data = load_mnist(args.data_dir, download=not args.no_download)
    # the same seeded split the model was trained with: its val figure is reproducible too
    splits = split_mnist(data, val_size=config.val_size, seed=config.split_seed)
    figures: dict[str, Any] = {"source": label}
    for part, images, labels in (
        ("val", splits.val_images, splits.val_labels),
        ("test", splits.test_images, splits.test_labels),
    ):
        stats = evaluate(
            model, images, labels, batch_size=config.eval_batch_size, tta_angles=config.tta_angles
        )
        figures[f"{part}_acc"] = round(stats.acc, 4)
        figures[f"{part}_size"] = int(labels.shape[0])
    recorded: dict[str, Any] = {}
    if args.checkpoint is None:
        from mnistlab import pretrained

        recorded = pretrained.info(args.pretrained or "default")
    if args.json:
        figures["recorded_test_acc"] = recorded.get("test_acc")
        print(json.dumps(figures, indent=2))
        return 0
    print(label)
    print(
        f"val_acc {figures['val_acc']:.2f}% on {figures['val_size']:,} held-out train images "
        f"(split seed {config.split_seed})"
    )
    line = f"test_acc {figures['test_acc']:.2f}% on the official {figures['test_size']:,} test set"
    if "test_acc" in recorded:
        same = round(figures["test_acc"], 2) == round(float(recorded["test_acc"]), 2)
        verdict = "same" if same else "DIFFERENT"
        line += f" (recorded when shipped: {recorded['test_acc']:.2f}%: {verdict})"
    print(line)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mnistlab.inference.predict import expand_inputs, predict
    from mnistlab.inference.preprocess import preprocess_image

    model, _, label = _load_for_inference(args)
    paths, problems = expand_inputs(args.images)
    # one record per input, in the order given; predictions are filled in after one batch
    records: list[dict[str, Any]] = [{"file": item, "error": msg} for item, msg in problems]
    images, done = [], []
    for path in paths:
        try:
            images.append(preprocess_image(path))
            done.append(len(records))
            records.append({"file": str(path)})
        except MnistlabError as error:
            records.append({"file": str(path), "error": str(error)})
    for record in records:
        if "error" in record:
            # a bad file costs one line and the others go on
            print(f"mnistlab predict: skipped: {record['error']}", file=sys.stderr)
    predictions = predict(model, np.stack(images)) if images else []
    for index, prediction in zip(done, predictions, strict=True):
        records[index].update(prediction.as_dict())
    names = [records[index]["file"] for index in done]
    if args.json:
        print(json.dumps({"model": label, "results": records}, indent=2))
    elif predictions:
        print(f"model: {label}")
        width = max((len(n) for n in names), default=0)
        for name, prediction in zip(names, predictions, strict=True):
            top3 = "  ".join(f"{d} {100 * p:5.1f}%" for d, p in prediction.top3)
            print(
                f"{name:<{width}}  {prediction.digit}  ({100 * prediction.prob:5.1f}%)   "
                f"top-3: {top3}"
            )
    if not predictions:
        print("mnistlab predict: error: no image could be predicted", file=sys.stderr)
        return 2
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist, split_mnist
    from mnistlab.inference.export import (
        MAX_ABS_DIFF,
        check_parity,
        export_onnx,
        measure_latency,
        onnx_session,
        require_onnx,
    )

    _check_count("--parity-images", args.parity_images)
    require_onnx()  # before loading anything: a missing extra is the likeliest problem
    model, config, label = _load_for_inference(args)
    out = export_onnx(model, config, args.onnx)
    print(f"exported {label}")
    print(
        f"  -> {out} ({out.stat().st_size:,} bytes, opset 18, batch axis dynamic; "
        "onnx.checker passed)"
    )
    data = load_mnist(args.data_dir, download=not args.no_download)
    test = split_mnist(data)
    count = min(args.parity_images, test.test_images.shape[0])
    images, labels = test.test_images[:count], test.test_labels[:count]
    session = onnx_session(out)
    parity = check_parity(model, session, images, labels)
    print(
        f"parity on the first {parity.images:,} official test images (ONNX Runtime vs PyTorch): "
        f"max |logit diff| {parity.max_abs_diff:.2e} (limit {MAX_ABS_DIFF:.0e}), "
        f"same prediction {parity.agree}/{parity.images}, accuracy "
        f"{100 * parity.torch_correct / parity.images:.2f}% (PyTorch) / "
        f"{100 * parity.onnx_correct / parity.images:.2f}% (ONNX Runtime)"
    )
    import torch

    print(f"latency (median of repeated runs, CPU, {torch.get_num_threads()} threads each):")
    for batch, repeats in ((1, args.repeats), (1024, max(3, args.repeats // 20))):
        lat = measure_latency(model, session, images, batch, repeats)
        print(
            f"  batch {batch:>4}: PyTorch {lat.torch_ms:8.3f} ms   ONNX Runtime "
            f"{lat.onnx_ms:8.3f} ms   ({batch / lat.onnx_ms * 1000:,.0f} img/s ONNX, "
            f"{batch / lat.torch_ms * 1000:,.0f} img/s PyTorch)"
        )
    if not parity.ok:
        print("mnistlab export: error: the ONNX model does not match PyTorch", file=sys.stderr)
        return 1
    print("parity check passed")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mnistlab.inference.server import make_server

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    model, _, label = _load_for_inference(args)
    try:
        server = make_server(
            model, host=args.host, port=args.port, label=label, verbose=args.verbose
        )
    except OSError as error:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    # flush: a script (or test) waiting for this line reads the port from it
    print(f"serving {label} on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mnistlab.bench import run_bench, run_grid_bench

    if args.seconds <= 0:
        raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
    _check_count("--batch-size", args.batch_size)
    if args.grid is not None:
        _check_count("--grid", args.grid)
    result = run_bench(args.model, args.batch_size, args.seconds, args.data_dir)
    grid = None
    if args.grid is not None:
        grid = run_grid_bench(
            result.reference_img_per_s,
            args.model,
            args.batch_size,
            args.seconds,
            args.data_dir,
            configs=args.grid,
        )
    if args.json:
        record = result.to_dict()
        if grid is not None:
            record.update(grid.to_dict())
        print(json.dumps(record))
        return 0
    print(
        f"model {result.model}, batch {result.batch_size}, {result.threads} threads, "
        f"torch {torch_version()}"
    )
    print(
        f"reference (torchvision DataLoader, 2 workers, RandomRotation(7)): "
        f"{result.reference_img_per_s:,.0f} img/s"
    )
    print(
        f"mnistlab (device-resident uint8, batched rotation): "
        f"{result.mnistlab_img_per_s:,.0f} img/s"
    )
    if grid is not None:
        print(f"grid of {grid.configs} configs, aggregate train img/s:")
        print(f"  reference, one config after another: {grid.reference_img_per_s:,.0f}")
        print(f"  mnistlab, one config after another: {grid.sequential_img_per_s:,.0f}")
        print(
            f"  mnistlab, {grid.workers} worker processes side by side: "
            f"{grid.workers_img_per_s:,.0f}"
        )
        print(f"  mnistlab, {grid.configs} configs fused: {grid.fused_img_per_s:,.0f}")
        print(f"grid_speedup={grid.speedup:.2f} ({grid.best_mode})")
    print(f"speedup={result.speedup:.2f}")
    return 0


def torch_version() -> str:
    import torch

    return torch.__version__


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

    def model_option_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--model-opt",
            dest="model_options",
            action="append",
            type=_parse_option,
            metavar="KEY=VALUE",
            help="model option, e.g. use_bn=false (repeatable)",
        )

    sub = commands.add_parser(
        "summary",
        help="per-layer table, receptive field, MACs and the budget checklist of any model",
        description="Trace one forward pass of MODEL and print each layer's output shape, "
        "params, receptive field and MACs, the totals, and the checks the seed authors do by "
        "hand: params under budget, BatchNorm, dropout, a GAP head, the receptive field at "
        f"the head vs 28. {MODEL_REFERENCE_HELP}",
    )
    sub.add_argument("model", metavar="MODEL", help=MODEL_REFERENCE_HELP)
    sub.add_argument("--max-params", type=int, help="check params < N")
    sub.add_argument("--fit", action="store_true", help="first scale its width under --max-params")
    sub.add_argument(
        "--epochs",
        type=int,
        help=f"planned epochs, for --max-epochs (default: {TrainConfig().epochs})",
    )
    sub.add_argument("--max-epochs", type=int, help="check planned --epochs <= E")
    model_option_flag(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.set_defaults(handler=cmd_summary)

    sub = commands.add_parser(
        "fit",
        help="scale a model's width (or another numeric option) to fit a parameter budget",
        description="Find the largest value of a numeric option of MODEL (its width by "
        "default; a float on a 0.01 grid, an int in steps of 1) with fewer than N params and "
        "print the per-layer table. `train --max-params N` does the same for the width at "
        f"training time. {MODEL_REFERENCE_HELP}",
    )
    sub.add_argument("--model", required=True, help=MODEL_REFERENCE_HELP)
    sub.add_argument("--max-params", type=int, required=True, help="the budget: params < N")
    sub.add_argument("--option", help="numeric option to scale (default: width)")
    model_option_flag(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON document")
    sub.set_defaults(handler=cmd_fit)

    sub = commands.add_parser(
        "train",
        help="train one model (the default config is a good recipe for `tiny`)",
        description="Train one model. Values come from the defaults, then --recipe, then "
        "--config, then flags. "
        "The best epoch is chosen on the validation split; the test set is "
        "evaluated once, on those weights.",
    )
    sub.add_argument(
        "--recipe",
        help=f"start from a named recipe: {', '.join(RECIPES)} (budgets 20k/8k/5k params)",
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
            "--runs-dir", default="runs", help="root of the per-run directories (default: runs)"
        )
        sub.add_argument(
            "--fuse",
            choices=("auto", "on", "off"),
            default="auto",
            help="train runs that share an architecture and data settings together, one "
            "batched forward/backward (auto: on CUDA only, where it is faster; default: auto)",
        )
        sub.add_argument(
            "--fuse-max",
            type=int,
            default=8,
            help="at most this many runs trained together (default: 8)",
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bars")
        sub.add_argument(
            "--no-wait",
            action="store_true",
            help="with nothing left to claim, exit (code 3) instead of waiting for runs other "
            "processes hold",
        )
        data_flags(sub)

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
        "--runs-dir", default="runs", help="root of the per-trial directories (default: runs)"
    )
    data_flags(sub)
    sub.set_defaults(handler=cmd_tune)

    sub = commands.add_parser(
        "report",
        help="write REPORT.md and index.html (tables, plots, checks) for a suite",
        description="Build a report from the store: results sorted like seed 000, best config, "
        "top-k, learning curves, test-set confusion matrix and mistakes of the best run, "
        "constraint checklist, model cards, timing and the params/accuracy Pareto plot. "
        "Reads stored runs only (evaluates saved weights; never trains).",
    )
    store_flag(sub)
    sub.add_argument("--suite", help="suite to report (default: the store's only suite)")
    sub.add_argument("--out", required=True, type=Path, help="report directory")
    sub.add_argument(
        "--max-params",
        type=int,
        help="parameter budget (default: the suite's seed budget, else 20000)",
    )
    sub.add_argument("--max-epochs", type=int, help="epoch limit (default: the suite's, else 20)")
    sub.add_argument(
        "--target",
        type=float,
        help="target val accuracy in %% (default: the suite's, else 99.4)",
    )
    sub.add_argument(
        "--top-k", type=int, default=5, help="configs in the top table and curves (default: 5)"
    )
    sub.add_argument(
        "--device", default="auto", help="device for evaluation and timing (default: auto)"
    )
    data_flags(sub)
    sub.set_defaults(handler=cmd_report)

    def model_flags(sub: argparse.ArgumentParser, default: str | None) -> None:
        from mnistlab import pretrained

        source = sub.add_mutually_exclusive_group(required=default is None)
        source.add_argument(
            "--checkpoint", type=Path, help="a best.pt/last.pt written by `mnistlab train`"
        )
        source.add_argument(
            "--pretrained",
            metavar="NAME",
            help=f"a model shipped with mnistlab: {', '.join(pretrained.available())}"
            + (f" (default: {default})" if default else ""),
        )

    sub = commands.add_parser(
        "eval",
        help="recompute a trained model's val and test accuracy from the raw MNIST files",
        description="Evaluate a shipped model (--pretrained) or a checkpoint on its validation "
        "split (same split seed as in training) and on the official 10k test set, and compare "
        "with the figure recorded when it was shipped.",
    )
    model_flags(sub, "default")
    data_flags(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON document")
    sub.set_defaults(handler=cmd_eval)

    sub = commands.add_parser(
        "predict",
        help="classify images of handwritten digits (PNG, JPEG, BMP, GIF, WebP)",
        description="Predict the digit in each image. Any size, colour or polarity: images are "
        "preprocessed the MNIST way (grayscale, white on black, cropped, scaled to 20 px, "
        "centred by centre of mass in 28x28). A bad file is reported and skipped; exit code "
        "2 if nothing could be predicted.",
    )
    sub.add_argument("images", nargs="+", metavar="IMAGE", help="files, directories or globs")
    model_flags(sub, "default")
    sub.add_argument("--json", action="store_true", help="print one JSON document")
    sub.set_defaults(handler=cmd_predict)

    sub = commands.add_parser(
        "export",
        help="export a model to ONNX and check it against PyTorch (needs mnistlab[onnx])",
        description="Write ONNX (dynamic batch axis), check it with onnx.checker, run it in "
        "ONNX Runtime on official test images (max |logit diff| must be <= 1e-4 and every "
        "prediction identical) and time batch-1 and batch-1024 inference in both runtimes.",
    )
    model_flags(sub, None)
    sub.add_argument("--onnx", required=True, metavar="OUT.onnx", help="file to write")
    sub.add_argument(
        "--parity-images",
        type=int,
        default=1000,
        help="official test images for the parity check (default: 1000)",
    )
    sub.add_argument("--repeats", type=int, default=200, help="timed batch-1 calls (default: 200)")
    data_flags(sub)
    sub.set_defaults(handler=cmd_export)

    sub = commands.add_parser(
        "serve",
        help="a local web page to draw digits and watch the model classify them",
        description="Serve a draw-a-digit page (no network needed) and a JSON endpoint "
        "POST /predict. Binds 127.0.0.1 unless --host says otherwise.",
    )
    model_flags(sub, "default")
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sub.add_argument(
        "--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)"
    )
    sub.add_argument("--verbose", action="store_true", help="log every request")
    sub.set_defaults(handler=cmd_serve)
    sub = commands.add_parser("bench", help="time the seeds' pipeline and mnistlab's side by side")
    sub.add_argument(
        "--model", default="tiny", help="model to train (default: tiny); " + MODEL_REFERENCE_HELP
    )
    sub.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    sub.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="timed seconds per pipeline, after warm-up (default: 20)",
    )
    sub.add_argument(
        "--grid",
        type=int,
        metavar="K",
        help="also time K configs: one after another, in worker processes, and fused",
    )
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_argument("--data-dir", type=Path, default=None, help="MNIST directory")
    sub.set_defaults(handler=cmd_bench)
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
    except BrokenPipeError:
        # output piped into `head` and the like: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
