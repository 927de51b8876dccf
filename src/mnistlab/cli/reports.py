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
    from mnistlab.bench import bench_lines, run_bench

    if args.seconds <= 0:
        raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
    check_count("--batch-size", args.batch_size)
    check_count("--rounds", args.rounds)
    if args.threads is not None:
        check_count("--threads", args.threads)
    if args.grid is not None:
        check_count("--grid", args.grid)
    result = run_bench(
        args.model,
        args.batch_size,
        args.seconds,
        args.data_dir,
        device=args.device,
        rounds=args.rounds,
        grid=args.grid,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    for line in bench_lines(result):
        print(line)
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

    sub = commands.add_parser(
        "bench",
        help="time seed 000's training pipeline and train's own steps side by side",
        description="Reference: seed 000's pipeline (its TinyMNISTNet with nn.Dropout, "
        "torchvision DataLoader with 2 workers and PIL RandomRotation(7), SGD + OneCycle, "
        "loss.item() every step). mnistlab: the steps `train` runs (engine.loop.train_one_epoch "
        "on the run train_run sets up), default config with rotation 7 degrees. Both train the "
        "same images in interleaved rounds after warm-up; validation is timed on neither side. "
        "The load average is printed: other work on the machine slows both sides.",
    )
    sub.add_argument(
        "--model",
        default="tiny",
        help="mnistlab's model (default: tiny; the reference is always seed 000's "
        "TinyMNISTNet); " + MODEL_REFERENCE_HELP,
    )
    sub.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    sub.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="about how long the reference trains in all rounds, after warm-up; the other "
        "sides train the same images (default: 20)",
    )
    sub.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds per side (default: 4)"
    )
    sub.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device for both sides (default: auto)",
    )
    sub.add_argument(
        "--threads",
        type=int,
        help="torch threads of this process, for both sides (default: torch's, as `train` "
        "gets them; a thread per core slows sharply when other work shares the cores)",
    )
    sub.add_argument(
        "--grid",
        type=int,
        metavar="K",
        help="also time K configs as `grid --workers min(K, cores)` trains them, against the "
        "reference training them one after another",
    )
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_argument("--data-dir", type=Path, default=None, help="MNIST directory")
    sub.set_defaults(handler=cmd_bench)
