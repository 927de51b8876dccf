"""`mnistlab train` and `mnistlab.train` take one list of run options (`run.options`)."""

from __future__ import annotations

import inspect
import json

import pytest

import mnistlab
from mnistlab.errors import ConfigError
from mnistlab.run.options import RUN_OPTIONS, RunOptions

# the CLI spells two options as negative flags
FLAGS = {"download": "--no-download", "progress": "--no-progress"}


def test_every_run_option_is_an_api_keyword_and_a_train_flag():
    from mnistlab.cli import build_parser

    keywords = inspect.signature(mnistlab.train).parameters
    assert set(RUN_OPTIONS) <= set(keywords)
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {flag for action in train._actions for flag in action.option_strings}
    for name in RUN_OPTIONS:
        assert FLAGS.get(name, "--" + name.replace("_", "-")) in flags, name


@pytest.mark.parametrize(
    ("values", "message"),
    [({"threads": 0}, "threads must be a whole number >= 1, got 0"),
     ({"threads": "2"}, "got '2'"),
     ({"track": "wandb"}, "unknown track 'wandb'; valid choices: mlflow")],
)  # fmt: skip
def test_bad_run_options_are_one_line_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        RunOptions(**values)


@pytest.mark.long
def test_the_api_takes_threads_like_the_cli(tmp_path, mnist_dir):
    run = mnistlab.train(
        "tiny", epochs=1, train_subset=500, val_size=500, threads=1, progress=False,
        out=tmp_path / "run", data_dir=mnist_dir,
    )  # fmt: skip
    assert json.loads((run.run_dir / "summary.json").read_text())["threads"] == 1
