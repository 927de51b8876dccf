"""Search: spaces as TOML, Optuna studies with pruning, bad choices pruned or diverged."""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest
import torch

from mnistlab.cli import main
from mnistlab.errors import ConfigError
from mnistlab.experiments.store import RunStore
from mnistlab.experiments.tune import builtin_spaces, load_space, parse_space, run_tune
from quick_config import quick_base

# tiny runs: 500 training and 500 validation images, no augmentation, constant lr
QUICK_SPACE = (
    'name = "quick"\n[base]\n'
    + quick_base(epochs=3, batch_size=32, train_subset=500, lr=None, optimizer="sgd")
    + """[params]
lr = { choices = [0.05, 0.00001, 100.0] }
"""
)


def write_space(tmp_path: Path, text: str = QUICK_SPACE, name: str = "space.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- spaces -----------------------------------------------------------------------------------


def test_budget8k_searches_models_under_8000_params_in_at_most_15_epochs():
    from mnistlab.run.build import build_model, count_params

    assert "budget8k" in builtin_spaces()
    space = load_space("budget8k")
    names = {p.name for p in space.params}
    assert {"model", "optimizer", "lr", "weight_decay", "batch_size", "dropout_p"} <= names
    assert {"aug_strength", "label_smoothing", "scheduler"} <= names
    for model in next(p for p in space.params if p.name == "model").choices:
        config = space.config({"model": model})
        assert config.epochs <= 15 and count_params(build_model(config)) < 8000
    # caps from the command line shorten the run and keep its no-augmentation tail inside it
    short = space.config({}, max_epochs=3, max_params=5000, train_subset=1000)
    assert (short.epochs, short.max_params, short.train_subset) == (3, 5000, 1000)
    assert short.no_aug_last <= 3


@pytest.mark.parametrize(
    ("space_name", "budget", "max_epochs"),
    [
        ("budget20k", 20_000, 20),
        ("budget4k", 4_000, 15),
        ("budget2k", 2_000, 20),
        ("budget1k", 1_000, 30),
    ],
)
def test_each_budget_space_keeps_every_model_under_its_budget(space_name, budget, max_epochs):
    from mnistlab.run.build import build_model, count_params

    space = load_space(space_name)
    names = {p.name for p in space.params}
    assert {"model", "lr", "weight_decay", "batch_size", "aug_strength", "label_smoothing"} <= names
    models = next(p for p in space.params if p.name == "model").choices
    assert len(models) >= 2
    for model in models:
        config = space.config({"model": model})
        params = count_params(build_model(config))
        # scaled to the largest width under the budget (channel steps are coarse): never over
        assert config.epochs <= max_epochs and 0.75 * budget < params < budget


def test_space_values_map_onto_the_config():
    space = parse_space(
        {
            "name": "x",
            "base": {"model": "tiny", "rotate_deg": 8.0, "translate": 0.1},
            "params": {
                "width": {"low": 0.5, "high": 1.0},
                "aug_strength": {"low": 0.0, "high": 2.0},
                "epochs": {"low": 1, "high": 4},
                "label_smoothing": {"low": 0, "high": 0.1},
            },
        },
        source="x.toml",
    )
    kinds = {p.name: p.kind for p in space.params}
    assert kinds == {"width": "float", "aug_strength": "float", "epochs": "int"} | {
        "label_smoothing": "float"
    }
    config = space.config({"width": 0.75, "aug_strength": 0.5, "epochs": 2})
    assert config.model_options["width"] == 0.75 and config.epochs == 2
    assert (config.rotate_deg, config.translate) == (4.0, 0.05)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("colour = { choices = ['red'] }", "unknown parameter 'colour'"),
        ("lr = { low = 0.1, high = 0.01 }", "parameter 'lr': empty range"),
        ("lr = { low = 0.1, high = 0.1 }", "parameter 'lr': empty range"),
        ("batch_size = { choices = [] }", "parameter 'batch_size': choices must be a non-empty"),
        ("lr = { low = 0.0, high = 0.1, log = true }", "parameter 'lr': a log range needs low > 0"),
        ("epochs = { low = 1.5, high = 3 }", "parameter 'epochs': an integer parameter"),
        ("lr = { low = -1.0, high = 0.1 }", "parameter 'lr' = -1.0: lr must be"),
        ("model = { choices = ['tiny', 'nope'] }", "parameter 'model' = 'nope'"),
        ("optimizer = { low = 1, high = 2 }", "takes choices, not a range"),
        ("lr = { low = 0.01, high = 0.1, steps = 2 }", "unknown key 'steps'"),
    ],
)
def test_bad_spaces_exit_2_with_one_line_naming_the_parameter(tmp_path, capsys, params, fragment):
    text = QUICK_SPACE.split("[params]")[0] + "[params]\n" + params + "\n"
    path = write_space(tmp_path, text, "bad.toml")
    store = f"sqlite:///{tmp_path}/store.db"
    code = main(["tune", "--space", str(path), "--trials", "1", "--store", store])
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and "bad.toml" in err and len(err.strip().splitlines()) == 1


def test_unknown_space_lists_the_builtins(capsys):
    code = main(["tune", "--space", "nope", "--trials", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "budget8k" in err and "PATH.toml" in err


def test_load_space_rejects_a_space_without_params(tmp_path):
    with pytest.raises(ConfigError, match="needs a \\[params\\] table"):
        load_space(write_space(tmp_path, QUICK_SPACE.split("[params]")[0]))


# -- studies ----------------------------------------------------------------------------------


@pytest.mark.long
def test_bad_learning_rates_are_pruned_or_diverged_and_the_study_finishes(tmp_path, mnist_dir):
    store = RunStore(f"sqlite:///{tmp_path}/store.db")
    space = load_space(write_space(tmp_path))
    study = optuna.create_study(study_name="quick", storage=store.storage, direction="maximize")
    # a fixed order: a good lr first, so the median pruner has something to compare with
    for lr in (0.05, 0.00001, 100.0):
        study.enqueue_trial({"lr": lr})
    outcome = run_tune(
        store,
        space,
        3,
        # judged from epoch 2 on: after one epoch of 16 steps BN statistics are still settling
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1),
        data_dir=mnist_dir,
        runs_root=tmp_path / "runs",
        log=None,
    )
    trials = {t.params["lr"]: t for t in store.study("quick", create=False).trials}
    good, slow, huge = trials[0.05], trials[0.00001], trials[100.0]
    assert good.state == optuna.trial.TrialState.COMPLETE and good.value > 30
    # lr 1e-5 learns nothing: below the median after epoch 2, stopped there
    assert slow.state == optuna.trial.TrialState.PRUNED
    assert slow.user_attrs["summary"]["epochs_run"] == 2
    assert slow.user_attrs["state"] == "pruned"
    # lr 100 blows up: recorded as diverged, the study went on
    assert huge.state == optuna.trial.TrialState.FAIL
    assert huge.user_attrs["state"] == "diverged"
    assert (outcome.finished, outcome.pruned, outcome.diverged) == (1, 1, 1)
    assert outcome.epochs_saved == 1 and outcome.best.number == good.number
    # every trial kept its record; the objective is val accuracy, never test
    assert good.value == good.user_attrs["summary"]["val_acc"]


@pytest.mark.long
def test_tune_command_resumes_to_the_total_and_shows_test_beside_val(tmp_path, capsys, mnist_dir):
    text = QUICK_SPACE.replace("0.00001, 100.0", "0.1").replace('"tiny"', '"tiny"\nwidth = 0.5')
    path = write_space(tmp_path, text)
    argv = [
        "tune",
        "--space",
        str(path),
        "--trials",
        "1",
        "--max-epochs",
        "1",
        "--pruner",
        "hyperband",
        "--store",
        f"sqlite:///{tmp_path}/store.db",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--data-dir",
        str(mnist_dir),
        "--threads",
        "3",  # neither torch's default here nor 1: the trials ran with the given count
    ]
    threads_before = torch.get_num_threads()
    assert main(argv) == 0
    assert torch.get_num_threads() == threads_before  # restored after the study
    out = capsys.readouterr().out
    assert "study quick: 1 finished, 0 pruned" in out
    assert "(chosen on val): val_acc" in out and "test_acc" in out
    # the study holds 1 trial: asking for 1 again runs nothing, asking for 2 runs one more
    assert main(argv) == 0
    assert "trial 1" not in capsys.readouterr().out
    argv[argv.index("--trials") + 1] = "2"
    assert main(argv) == 0
    assert "trial 1: finished" in capsys.readouterr().out
    # trials are readable like grid runs, each with its own run directory
    capsys.readouterr()
    store = f"sqlite:///{tmp_path}/store.db"
    assert main(["results", "--store", store, "--suite", "quick", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 2 and {r["state"] for r in runs} == {"finished"}
    assert len({r["run_dir"] for r in runs}) == 2
    assert all((Path(r["run_dir"]) / "best.pt").is_file() for r in runs)
    summaries = [json.loads((Path(r["run_dir"]) / "summary.json").read_text()) for r in runs]
    assert {summary["threads"] for summary in summaries} == {3}
    # joining the study with other settings would mix two problems: refused
    argv[argv.index("--max-epochs") + 1] = "2"
    assert main(argv) == 2
    assert "created with other settings: epochs 1 (asked 2)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("holder", "grace", "reason"),
    [
        # a dead pid on this machine: taken back at once, whatever the grace
        ("dead here", 900, "holder-died"),
        # another machine: waited for, taken back once its heartbeat is older than the grace
        ("elsewhere", 2, "stale"),
    ],
)
@pytest.mark.long
def test_a_dead_processes_trial_is_retried_at_the_same_point(
    tmp_path, mnist_dir, holder, grace, reason
):
    import subprocess
    import sys

    from mnistlab.experiments.heartbeat import Timing
    from mnistlab.experiments.owner import Owner, this_process

    text = QUICK_SPACE.replace('"tiny"', '"tiny"\nwidth = 0.5').replace("epochs = 3", "epochs = 1")
    text = text.replace("{ choices = [0.05, 0.00001, 100.0] }", "{ low = 0.01, high = 0.1 }")
    space = load_space(write_space(tmp_path, text))
    store = RunStore(f"sqlite:///{tmp_path}/store.db")
    lines: list[str] = []
    kwargs = {"data_dir": mnist_dir, "runs_root": tmp_path / "runs", "log": lines.append}
    run_tune(store, space, 1, **kwargs)
    # a process that claimed a trial and was killed: RUNNING, held by a pid that is gone
    me = this_process()
    if holder == "dead here":
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout  # fmt: skip
        owner = Owner(me.host, me.space, int(gone), 1)
    else:
        owner = Owner("otherhost", "other-boot/other-ns", 4242, 1)
    study = store.study("quick", create=False)
    store.set_timing(study, Timing(heartbeat_seconds=1, grace_seconds=grace))
    dead = study.ask({"lr": optuna.distributions.FloatDistribution(0.01, 0.1)})
    dead.set_user_attr("state", "running")
    store.set_attr(dead._trial_id, "owner", owner.to_attr())
    store.heartbeat(dead._trial_id)
    started = time.monotonic()
    outcome = run_tune(store, space, 2, **kwargs)
    trials = store.study("quick", create=False).trials
    assert trials[dead.number].state == optuna.trial.TrialState.FAIL
    assert trials[dead.number].user_attrs["state"] == reason
    retry = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(retry) == 1 and retry[0].params == dead.params
    assert retry[0].state == optuna.trial.TrialState.COMPLETE
    assert outcome.finished == 2 and len(trials) == 3  # the dead trial does not count
    waited = [line for line in lines if "waiting for 1 trial(s) held by other processes" in line]
    if holder == "elsewhere":
        assert waited and "otherhost pid 4242, heartbeat" in waited[0], lines
    else:
        assert not waited and time.monotonic() - started < 120, lines
