"""The commands a user copies from README.md and docs/**/*.md: each parses with the real CLI
parser, and the cheap ones run, in a scratch directory, with overrides that make training
tiny. Commands are found automatically (every ``mnistlab`` command in a ```bash/sh/shell/console
block), so a new doc page is covered without touching this file.

Lines with placeholders (``mnistlab fit --model M --max-params N``, ``[--json|--csv]``) are
synopses: every variant must parse, none is run. Commands that need a server, a file the reader
writes first, or minutes of training are parsed only, each with its reason.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import itertools
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mnistlab.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")

# Synopsis placeholders and a value of the right type for each, so the parser can check the
# flags around them; None means "any flags" and is dropped. An unknown placeholder fails.
PLACEHOLDERS: dict[str, str | None] = {
    "M": "tiny",
    "N": "8000",
    "K": "2",
    "NAME": "seed000",
    "SUITE": "seed000",
    "PATH.toml": "mine.toml",
    "IMAGE...": "digit.png",
    "OUT": "out.onnx",
    "DIR": "report",
    "flags": None,
}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.[a-z]+)?(\.\.\.)?$")

# Appended to a command that trains, so it takes seconds: argparse keeps the last value given.
OVERRIDES: dict[str, list[str]] = {
    "train": [
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--val-size",
        "500",
        "--no-aug-last",
        "0",  # a recipe's no_aug_last may exceed 1 epoch
        "--no-progress",
    ],
    "tune": ["--trials", "1", "--max-epochs", "1", "--train-subset", "500"],
    "export": ["--parity-images", "100", "--repeats", "5"],
}
STORE_READERS = {"results", "report", "worker"}
OUTPUTS = {"--out", "--onnx", "--runs-dir", "--store"}  # their values are never copied in


@dataclass
class Command:
    """One ``mnistlab`` invocation found in a doc; ``variants`` has several for a synopsis."""

    where: str  # path:line
    block: str  # path:line of the fenced block; commands of one block share a scratch dir
    index: int  # position within its block
    text: str
    variants: list[list[str]]
    synopsis: bool  # placeholders or alternatives: parsed, never run
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return self.variants[0]


def _fenced_blocks(path: Path) -> list[tuple[int, str, list[tuple[int, str]]]]:
    """(first line number, language, [(line number, text)]) for each fenced block."""
    blocks, current = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if current is None and match:
            current = (number, match.group(2).lower(), [])
        elif current is not None and match and not match.group(2):
            blocks.append(current)
            current = None
        elif current is not None:
            current[2].append((number, line))
    return blocks


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join backslash continuations; drop a console prompt."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in lines:
        text = line.strip()
        if pending is None and text.startswith("$ "):
            text = text[2:]
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text
        if text.endswith("\\"):
            pending = (number, text[:-1])
            continue
        pending = None
        out.append((number, text))
    if pending is not None:
        out.append(pending)
    return out


def _expand(tokens: list[str], where: str) -> tuple[list[list[str]], bool]:
    """The concrete argvs of a command line, and whether it was a synopsis."""
    choices: list[list[list[str]]] = []  # per slot: alternatives, each a list of tokens
    synopsis = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("[") and not token.startswith("[["):
            group = [token[1:]]
            while not group[-1].endswith("]"):
                i += 1
                if i == len(tokens):
                    raise AssertionError(f"{where}: unclosed [ in synopsis")
                group.append(tokens[i])
            group[-1] = group[-1][:-1]
            # [--json|--csv] is one of several; [--grid K] is one optional group
            alts = [[a] for a in group[0].split("|")] if len(group) == 1 else [group]
            choices.append([[], *alts])
            synopsis = True
        elif "|" in token and "://" not in token:
            choices.append([[a] for a in token.split("|")])
            synopsis = True
        else:
            choices.append([[token]])
        i += 1
    variants: list[list[str]] = []
    for combo in itertools.product(*choices):
        argv: list[str] = []
        for part in itertools.chain.from_iterable(combo):
            if part in PLACEHOLDERS or PLACEHOLDER.match(part):
                if part not in PLACEHOLDERS:
                    raise AssertionError(
                        f"{where}: unknown placeholder {part!r}; add a sample value to "
                        "PLACEHOLDERS in tests/test_docs.py"
                    )
                synopsis = True
                if PLACEHOLDERS[part] is not None:
                    argv.append(PLACEHOLDERS[part])
            else:
                argv.append(part)
        if argv not in variants:  # `train [flags]` gives `train` twice
            variants.append(argv)
    return variants, synopsis


def _commands_in(path: Path) -> list[Command]:
    rel = path.relative_to(REPO).as_posix()
    found: list[Command] = []
    for start, lang, lines in _fenced_blocks(path):
        if lang not in SHELL_LANGS:
            continue
        index = 0
        for number, text in _logical_lines(lines):
            where = f"{rel}:{number}"
            try:
                tokens = shlex.split(text, comments=True)
            except ValueError as error:
                raise AssertionError(f"{where}: not a shell line ({error}): {text}") from None
            # split `a && b; c | d` into simple commands
            simple = [
                list(g)
                for sep, g in itertools.groupby(tokens, lambda t: t in {"&&", "||", ";", "|"})
                if not sep
            ]
            for words in simple:
                env: dict[str, str] = {}
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    key, _, value = words.pop(0).partition("=")
                    env[key] = value
                if not words or Path(words[0]).name != "mnistlab":
                    continue
                variants, synopsis = _expand(words[1:], where)
                found.append(Command(where, f"{rel}:{start}", index, text, variants, synopsis, env))
                index += 1
    return found


COMMANDS = [c for path in DOCS for c in _commands_in(path)]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("mnistlab's parser has no subcommands")


def _parse(argv: list[str]) -> str | None:
    """None if the real parser accepts ``argv``, else its error line."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):  # --help and --version exit 0
            return f"exit {exit_.code}"
    return None


def test_docs_have_commands():
    # the extraction itself must find what the README shows (else every test below is vacuous)
    subcommands = {c.argv[0] for c in COMMANDS if c.argv}
    assert {"train", "data", "grid", "tune", "predict", "serve"} <= subcommands, subcommands
    assert any(c.where.startswith("README.md") and c.argv == ["train"] for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_documented_command_parses(command, capsys):
    problems = []
    for argv in command.variants:
        error = _parse(argv)
        if error is not None:
            problems.append(f"mnistlab {shlex.join(argv)}: {capsys.readouterr().err.strip()}")
    assert not problems, f"{command.where}: {command.text}\n" + "\n".join(problems)


def _inline_spans() -> list[tuple[str, str]]:
    spans = []
    for path in DOCS:
        rel = path.relative_to(REPO).as_posix()
        in_block = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line):
                in_block = not in_block
                continue
            if not in_block:
                spans += [(f"{rel}:{number}", s) for s in re.findall(r"`(mnistlab [^`]+)`", line)]
    return spans


def test_flags_in_inline_commands_exist():
    # `mnistlab train --seed N` in prose: the subcommand and every --flag must exist (prose
    # often shows part of a command, so a full parse would be wrong here)
    subparsers = _subparsers(build_parser())
    problems = []
    for where, span in _inline_spans():
        words = span.replace("[", " ").replace("]", " ").split()
        if words[1] not in subparsers:
            if not PLACEHOLDER.match(words[1]):
                problems.append(f"{where}: `{span}`: no command {words[1]!r}")
            continue
        options = subparsers[words[1]]._option_string_actions
        for word in words[2:]:
            for flag in word.split("|"):
                if flag.startswith("-") and flag.split("=")[0] not in options:
                    problems.append(f"{where}: `{span}`: {words[1]} has no {flag}")
    assert not problems, "\n".join(problems)


def test_commands_shown_as_output_are_not_commands():
    # an untagged block holds output (`mnistlab data: error: ...`); a command there would
    # escape the tests above, so it must be in a ```bash block
    subcommands = set(_subparsers(build_parser()))
    problems = []
    for path in DOCS:
        for _, lang, lines in _fenced_blocks(path):
            if lang in SHELL_LANGS:
                continue
            for number, text in lines:
                words = text.split()
                if len(words) > 1 and words[0] == "mnistlab" and words[1] in subcommands:
                    problems.append(f"{path.relative_to(REPO)}:{number}: {text}")
    assert not problems, "commands outside a ```bash block:\n" + "\n".join(problems)


def test_documented_program_is_the_cli():
    # `.venv/bin/mnistlab` in the Quick start is the console script running cli.main
    scripts = importlib.metadata.entry_points(group="console_scripts", name="mnistlab")
    assert [s.value for s in scripts] == ["mnistlab.cli:main"]


# --------------------------------------------------------------------------- running them


def _needs(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _why_not_run(command: Command, block: list[Command]) -> str | None:
    """None if the command runs here, else why it is only parsed."""
    argv = command.argv
    sub = argv[0] if argv else ""
    if command.synopsis:
        return "a synopsis with placeholders (each variant is parsed)"
    if sub == "serve":
        return "starts a server that runs until stopped (tests/test_inference.py starts it)"
    if any("postgresql://" in a for a in argv):
        return "needs a PostgreSQL server (tests/test_scaleout.py starts one)"
    if sub in ("grid", "worker"):
        return (
            "trains every run of a suite: minutes even at 1 epoch (grids are run end to end "
            "by tests/test_experiments.py and tests/reliability)"
        )
    if sub == "bench":
        return "times each pipeline for --seconds (tests/test_bench.py runs it for 0.5 s)"
    for a in argv:
        if a.endswith((".toml", ".pt")) and not (REPO / a).exists():
            return f"reads {a}, a file the reader writes first"
    if "--track" in argv:
        return (
            "MLflow's own store setup takes ~10 s per command (tests/test_tracking.py runs "
            "train, grid and tune with --track mlflow)"
        )
    if sub == "export" and any(_needs(m) for m in ("onnx", "onnxruntime", "onnxscript")):
        return "needs the onnx extra (pip install 'mnistlab[onnx]')"
    if sub in STORE_READERS and all(_why_not_run(c, block) for c in block[: command.index]):
        return "reads the store that the commands before it fill, which are not run here"
    for other in COMMANDS[: COMMANDS.index(command)]:
        if _effective(other) == _effective(command) and other.env == command.env:
            if other.block != command.block and _why_not_run(other, _block_of(other)) is None:
                return f"the same command as {other.where} once the overrides are appended"
    return None


def _final_argv(command: Command) -> list[str]:
    return [*command.argv, *OVERRIDES.get(command.argv[0] if command.argv else "", [])]


@functools.cache
def _parsed(argv: tuple[str, ...]) -> dict | None:
    try:
        return vars(build_parser().parse_args(argv))
    except SystemExit:
        return None


def _effective(command: Command) -> dict | None:
    """What the parser makes of the command with its overrides (`--trials 30 --trials 1` and
    `--trials 1` are the same run)."""
    return _parsed(tuple(_final_argv(command)))


def _block_of(command: Command) -> list[Command]:
    return [c for c in COMMANDS if c.block == command.block]


@dataclass
class _BlockState:
    scratch: Path
    done: dict[int, str | None] = field(default_factory=dict)  # index -> failure or None


_STATES: dict[str, _BlockState] = {}


def _scratch_copy(argv: list[str], scratch: Path) -> None:
    """Inputs named relative to the repo (docs/digits/) are copied into the scratch dir, so a
    command that writes (--out docs/...) can never touch the repository."""
    for before, a in zip(["", *argv], argv, strict=False):
        if re.fullmatch(r"[^:]+\.py:\w+", a):  # a model reference reads its file
            a = a.rpartition(":")[0]
        source = REPO / a
        if before in OUTPUTS or a.startswith("-") or "://" in a or not source.exists():
            continue
        # a suite or space names its model files relative to itself: they come along
        inputs = [a, *(str(p.relative_to(REPO)) for p in source.parent.glob("*.py"))]
        for name in inputs if a.endswith(".toml") else [a]:
            if (scratch / name).exists():
                continue
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, scratch / name)
            else:
                shutil.copy(REPO / name, scratch / name)


def _run(command: Command, scratch: Path, capsys, monkeypatch) -> str | None:
    argv = _final_argv(command)
    _scratch_copy(command.argv, scratch)
    with monkeypatch.context() as m:
        m.chdir(scratch)
        for key, value in command.env.items():
            if key != "MNISTLAB_DATA":  # the doc's data path is the author's; ours is set
                m.setenv(key, value)
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code or 0
        out, err = capsys.readouterr()
    if code != 0:
        tail = "\n".join((out + err).strip().splitlines()[-5:])
        return f"{command.where}: mnistlab {shlex.join(argv)} exited {code}:\n{tail}"
    return None


@pytest.mark.long
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_documented_command_runs(command, mnist_dir, tmp_path_factory, capsys, monkeypatch):
    block = _block_of(command)
    reason = _why_not_run(command, block)
    if reason is not None:
        pytest.skip(f"{command.where} `{command.text[:60]}` parsed only: {reason}")
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir.resolve()))
    if command.block not in _STATES:
        name = re.sub(r"\W+", "-", command.block)
        _STATES[command.block] = _BlockState(tmp_path_factory.mktemp(name))
    state = _STATES[command.block]
    # the commands before it in its block first (a `results` reads what `tune` stored), once
    for earlier in block[: command.index + 1]:
        if earlier.index not in state.done and _why_not_run(earlier, block) is None:
            state.done[earlier.index] = _run(earlier, state.scratch, capsys, monkeypatch)
        failure = state.done.get(earlier.index)
        assert failure is None, failure


# --------------------------------------------------------------------------- links

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of each markdown link outside fenced blocks that names a file
    in the repository (not http(s), mailto or a bare #anchor); the #anchor part is dropped."""
    links, in_block = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            continue
        for target in LINK.findall(line):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            links.append((number, target.split("#", 1)[0]))
    return links


def test_relative_links_resolve():
    # README.md and the docs pages link each other and lab/ by relative paths: a page
    # moved or a file renamed must not leave a dead link behind
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    problems = [
        f"{page.relative_to(REPO)}:{number}: {target}"
        for page in pages
        for number, target in _relative_links(page)
        if not (page.parent / target).exists()
    ]
    assert _relative_links(REPO / "README.md"), "no relative link found in README.md"
    assert not problems, "links to files that do not exist:\n" + "\n".join(problems)
