"""`train`: one run, its config from defaults, --recipe, --config and flags (`run.spec`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, get_type_hints

from mnistlab.cli.common import check_count, data_flags, parse_list, parse_option
from mnistlab.config import FIELD_HELP, TrainConfig
from mnistlab.recipes import RECIPE_NAMES
from mnistlab.records import RunStatus
from mnistlab.run.directory import check_out_dir, default_out_dir
from mnistlab.run.options import RunOptions

INTERNAL_FIELDS = ("model_sha256",)  # set by mnistlab (run.spec), never by a flag


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
                type=parse_option,
                metavar="KEY=VALUE",
                help=FIELD_HELP[name],
            )
        elif kind is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif kind == tuple[int, ...]:
            group.add_argument(flag, dest=name, type=parse_list(int), help=help_text)
        elif kind == tuple[float, ...]:
            group.add_argument(flag, dest=name, type=parse_list(float), help=help_text)
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


def run_options_from_args(args: argparse.Namespace) -> RunOptions:
    """The run options (`run.options`, the API's keywords) as `train`'s flags give them."""
    if args.threads is not None:
        check_count("--threads", args.threads)
    return RunOptions(
        out=args.out,
        data_dir=args.data_dir,
        download=not args.no_download,
        progress=not args.no_progress and sys.stderr.isatty(),
        threads=args.threads,
        track=getattr(args, "track", None),
    )


def cmd_train(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist
    from mnistlab.engine.device import torch_threads
    from mnistlab.experiments.tracking import train_tracked
    from mnistlab.models import count_params
    from mnistlab.models.reference import check_trainable_output
    from mnistlab.run.build import build_model, splits_for

    config = config_from_args(args)
    options = run_options_from_args(args)
    # built once before touching data: a bad model name/option or output fails fast
    model = build_model(config)
    check_trainable_output(config.model, model)
    params = count_params(model)
    out = Path(options.out) if options.out else default_out_dir(config.name)
    check_out_dir(out)
    data = load_mnist(options.data_dir, download=options.download)
    splits = splits_for(config, data)
    print(
        f"{config.name}: model {config.model} ({params:,} params), "
        f"train {splits.train_images.shape[0]:,} / val {splits.val_images.shape[0]:,} / "
        f"test {splits.test_images.shape[0]:,}, out {out}"
    )
    with torch_threads(options.threads):
        # train_run itself, mirrored into MLflow when --track mlflow is given
        result = train_tracked(options.track, config, splits, out, progress=options.progress)
    summary = result.summary
    if summary["state"] == RunStatus.DIVERGED:
        print(f"run diverged at epoch {summary['diverged_epoch']}; results in {out}")
        return 1
    print(
        f"done in {summary['seconds']:.0f}s: best epoch {summary['best_epoch']} "
        f"(chosen on val), val_acc {summary['val_acc']:.2f}%, test_acc {summary['test_acc']:.2f}%"
    )
    print(f"run directory: {out}")
    return 0


def add_commands(commands: Any) -> None:
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
        help=f"start from a named recipe: {', '.join(RECIPE_NAMES)} (r*: budgets of "
        "20k/8k/5k/4k/2k/1k params; speedrun: 99.4%% in under 45 s on 2 CPU cores; quick: "
        "constant lr, no augmentation, for a first look on a few thousand images)",
    )
    sub.add_argument("--config", type=Path, help="TOML file with run configuration keys")
    sub.add_argument("--out", help="run directory (default: runs/NAME, never overwritten)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub.add_argument(
        "--threads",
        type=int,
        help="torch threads for this run (default: torch's, one per core). On a machine "
        "shared with other work, 1 is often several times faster (docs/benchmarks.md); the "
        "thread count can change a run's low bits, so it is recorded in summary.json",
    )
    data_flags(sub)
    _add_config_flags(sub)
    sub.set_defaults(handler=cmd_train)
