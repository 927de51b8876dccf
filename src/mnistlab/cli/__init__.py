"""The `mnistlab` command line: it parses arguments and calls the library, nothing more.

One module per command group (models, train, grid, inference, reports), each adding its
commands to the parser. Every user error (bad flag value, corrupted data, unknown name) ends as
one line on stderr and exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mnistlab import __version__
from mnistlab.cli import grid, inference, models, reports, train
from mnistlab.cli.common import USER_OS_ERRORS, Parser
from mnistlab.errors import MnistlabError

GROUPS = (models, train, grid, reports, inference)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mnistlab",
        description="Reproducible, honest and fast experiments with tiny CNNs on MNIST.",
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in GROUPS:
        group.add_commands(commands)
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
    except Exception as error:
        torch = sys.modules.get("torch")  # loaded by whatever ran out of memory
        if torch is None or not isinstance(error, torch.OutOfMemoryError):
            raise
        print(
            f"mnistlab {args.command}: error: out of GPU memory: use a smaller --batch-size "
            "or --device cpu",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
