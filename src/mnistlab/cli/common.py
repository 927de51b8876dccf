"""What every command group shares: the one-line-error parser, common flags, value parsers."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from mnistlab.errors import ConfigError
from mnistlab.experiments import DEFAULT_STORE

MODEL_REFERENCE_HELP = (
    "A model is a registered name (`mnistlab models`), path/to/nets.py:Net or "
    "package.module:make_net (an nn.Module class or a function returning one)."
)
USER_OS_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with the valid choices argparse already names)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def rich_console() -> Any:
    from rich.console import Console

    # piped into a file, tables keep their full width instead of wrapping at 80 columns
    return Console() if sys.stdout.isatty() else Console(width=200)


def check_count(flag: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be > 0, got {value}")


def parse_list(kind: type) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            return [kind(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__}s, got {text!r}"
            ) from None

    return parse


def parse_option(text: str) -> tuple[str, Any]:
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


def model_option_flag(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--model-opt",
        dest="model_options",
        action="append",
        type=parse_option,
        metavar="KEY=VALUE",
        help="model option, e.g. use_bn=false (repeatable)",
    )


def store_flag(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help="Optuna storage URL: a SQLite file, or postgresql://... to share "
        f"one grid between machines (default: {DEFAULT_STORE})",
    )
