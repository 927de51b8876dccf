"""`report`, `bench`: reports of a store, and the speed benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mnistlab.cli.common import (
    MODEL_REFERENCE_HELP,
    check_count,
    data_flags,
    rich_console,
    store_flag,
)
from mnistlab.errors import ConfigError
from mnistlab.experiments import NOISE_RULE


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


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.table import Table as RichTable
    from rich.text import Text

    from mnistlab.experiments.compare import compare_store
    from mnistlab.reports.compare import comparison_notes, comparison_table

    comparison = compare_store(args.suite, args.store)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
        return 0
    table = comparison_table(comparison)
    shown = RichTable(title=f"published vs reproduced: {comparison.suite}")
    for index, header in enumerate(table.headers):
        shown.add_column(header, justify="right" if table.column(index) == "r" else "left")
    for row in table.rows:
        shown.add_row(*(Text(cell) for cell in row))  # cells are text, never rich markup
    rich_console().print(shown)
    for note in comparison_notes(comparison):
        print(note)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mnistlab.bench import run_bench, run_grid_bench

    if args.seconds <= 0:
        raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
    check_count("--batch-size", args.batch_size)
    if args.grid is not None:
        check_count("--grid", args.grid)
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


def add_commands(commands: Any) -> None:
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

    sub = commands.add_parser(
        "compare",
        help="a seed's published figures beside ours, with a verdict against the noise",
        description="For each figure a seed suite's README published (its [published] table): "
        "the figure, ours measured the seed's way (e.g. best epoch picked on the test set, "
        "from the per-epoch test accuracy the seed suites record), ours measured honestly "
        "(epoch picked on validation, test set evaluated once), mean ± std over the seeds in "
        "the store, the difference in points and a verdict. Only runs whose config is exactly "
        "the suite's count; a config without runs says 'not run'. Verdict: " + NOISE_RULE,
    )
    sub.add_argument(
        "suite", metavar="SUITE", help="a seed suite (seed000 ... seed004) or PATH.toml"
    )
    store_flag(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.set_defaults(handler=cmd_compare)

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
