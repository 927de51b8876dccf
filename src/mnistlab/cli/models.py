"""`data`, `models`, `summary`, `fit`: the data and the models, before any training."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mnistlab.cli.common import (
    MODEL_REFERENCE_HELP,
    check_count,
    data_flags,
    model_option_flag,
    rich_console,
)
from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError


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
    rich_console().print(table)
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
    console = rich_console()
    console.print(table)
    for item in items:
        mark = "·" if item.ok is None else ("✓" if item.ok else "✗")
        console.print(f"  {mark} {item.name}: {item.detail}", highlight=False)
    for note in card.notes:
        console.print(f"  note: {note}", highlight=False)


def cmd_summary(args: argparse.Namespace) -> int:
    from mnistlab.models import create_model, fit_to_budget
    from mnistlab.models.summary import checklist, format_macs, model_card, summary_record

    options = dict(args.model_options or [])
    if args.max_params is not None:
        check_count("--max-params", args.max_params)
    for flag, value in (("--max-epochs", args.max_epochs), ("--epochs", args.epochs)):
        if value is not None:
            check_count(flag, value)
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

    check_count("--max-params", args.max_params)
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


def add_commands(commands: Any) -> None:
    sub = commands.add_parser("data", help="find or download MNIST and verify its md5 sums")
    data_flags(sub)
    sub.set_defaults(handler=cmd_data)

    sub = commands.add_parser("models", help="list the registered models and their params")
    sub.add_argument("--json", action="store_true", help="print a JSON list")
    sub.set_defaults(handler=cmd_models)

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
