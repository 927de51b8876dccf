"""Grids: suites as data, the Optuna store, exactly-once runs, crashes, several workers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.experiments.store import RunStore
from mnistlab.experiments.suites import SuiteBudget, builtin_suites, load_suite, parse_suite
from quick_config import quick_base

QUICK_SUITE = (
    'name = "quick"\n[base]\n'
    + quick_base()
    + """[[groups]]
name = "g"
variants = [ { name = "sgd" }, { name = "adam", optimizer = "adam", lr = 0.003 } ]
axes = { batch_size = [32, 64] }
axis_labels = { batch_size = "bs" }
"""
)


def write_suite(tmp_path: Path, text: str = QUICK_SUITE, name: str = "quick.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def grid_argv(suite: Path | str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "grid",
        str(suite),
        "--store",
        f"sqlite:///{tmp_path}/store.db",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        *extra,
    ]


def results(tmp_path: Path, capsys, suite: str = "quick") -> list[dict]:
    capsys.readouterr()
    code = main(
        ["results", "--store", f"sqlite:///{tmp_path}/store.db", "--suite", suite, "--json"]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


# -- suites ---------------------------------------------------------------------------------


def test_builtin_suites_reproduce_the_seeds():
    assert {"seed000", "seed001", "seed002", "seed004"} <= set(builtin_suites())
    seed000 = load_suite("seed000")
    names = [c.name for c in seed000.cells]
    # A (1) + B (4) + C (4 optimizers x 3 batch sizes) + D (3 activations)
    assert len(names) == 20
    assert "C_bs_sweep_sgd_onecycle_bs64" in names and "D_activation_gelu" in names
    cells = {c.name: c.config for c in seed000.cells}
    a = cells["A_noBN_noDO_vanillaGD"]
    assert (a.optimizer, a.lr, a.momentum, a.scheduler) == ("sgd", 0.1, 0.0, "none")
    assert a.model_options == {"use_bn": False, "dropout_p": 0.0, "activation": "relu"}
    b = cells["B_bn_do_adamw_step"]
    assert (b.optimizer, b.scheduler, b.lr, b.epochs, b.batch_size) == (
        "adamw",
        "step",
        0.0025,
        20,
        128,
    )
    assert cells["C_bs_sweep_rmsprop_plateau_bs32"].batch_size == 32
    assert cells["D_activation_silu"].model_options["activation"] == "silu"
    seed002 = {c.name: c.config for c in load_suite("seed002").cells}
    # the seed's MultiStepLR([5, 12, 18], 0.33): the decayed lr starts at epochs 6, 13, 19
    win = seed002["batch_bs32"]
    assert (win.scheduler, win.milestones, win.gamma, win.lr) == (
        "multistep",
        (6, 13, 19),
        0.33,
        0.003,
    )
    # the ablation rows: the 17,758-param baseline at a constant lr, as the seed's CSV records
    bs16 = seed002["batch_bs16"]
    assert (bs16.model, bs16.scheduler, bs16.lr, bs16.batch_size) == (
        "s002_baseline",
        "none",
        0.0008,
        16,
    )
    assert seed002["dropout_p0p1"].batch_size == 128
    assert seed002["arch_s002_wide"].model == "s002_wide"
    assert len(load_suite("seed004").cells) == 4
    assert {c.config.model for c in load_suite("seed001").cells} == {
        "s001_m1",
        "s001_m2",
        "s001_m3",
        "s001_m3a",
    }


def test_user_suite_expands_variants_times_axes(tmp_path):
    suite = load_suite(write_suite(tmp_path))
    assert [c.name for c in suite.cells] == [
        "g_sgd_bs32",
        "g_sgd_bs64",
        "g_adam_bs32",
        "g_adam_bs64",
    ]
    assert len(suite.runs(3)) == 12


BUDGETED = (
    "name = 'x'\n[[groups]]\nname='g'\n[budget]\nmax_params = 20000\nmax_epochs = 20\n"
    "target = 99.4\n"
)


def test_a_suites_budget_is_data_about_it_and_the_seed_suites_state_theirs():
    budgeted = parse_suite(tomllib.loads(BUDGETED), source="x.toml")
    plain = parse_suite(tomllib.loads(BUDGETED.split("[budget]")[0]), source="x.toml")
    assert budgeted.budget == SuiteBudget(20_000, 20, 99.4) and plain.budget is None
    assert [c.config.config_hash() for c in budgeted.cells] == [
        c.config.config_hash() for c in plain.cells
    ]
    assert load_suite("seed001").budget == SuiteBudget(8_000, 15, 99.4)
    assert load_suite("budgets").budget is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name = 'x'\n[[groups]]\nname='g'\nset={ epochs = -1 }\n", "epochs must be > 0"),
        ("name = 'x'\n[[groups]]\nname='g'\ncolour='red'\n", "unknown key 'colour'"),
        ("name = 'x'\n[[groups]]\nname='g'\nset={ lr = 'fast' }\n", "lr must be a number"),
        ("name = 'x'\n[base]\nmodel='nope'\n[[groups]]\nname='g'\n", "model"),
        ("name = 'x'\nbase = [\n", "invalid TOML"),
        (BUDGETED.replace("target = 99.4", "target = 199"), "target must be a val accuracy"),
        (BUDGETED.replace("max_epochs = 20", "max_epochs = 0"), "max_epochs must be a positive"),
        (BUDGETED.replace("target = 99.4", "goal = 1"), "unknown key 'goal'"),
    ],
)
def test_bad_suite_files_exit_2_with_one_line(tmp_path, capsys, text, fragment):
    path = write_suite(tmp_path, text, "bad.toml")
    code = main(grid_argv(path, tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and "bad.toml" in err and len(err.strip().splitlines()) == 1


def test_unknown_suite_lists_the_choices(capsys, tmp_path):
    code = main(grid_argv("seed999", tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "seed000" in err and "PATH.toml" in err


def test_unopenable_store_is_a_clear_error(capsys, tmp_path):
    code = main(["results", "--store", "nosuchdb://x"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot open store" in err and len(err.strip().splitlines()) == 1


# -- running grids ----------------------------------------------------------------------------


@pytest.mark.long
def test_grid_runs_once_and_rerun_does_not_duplicate(tmp_path, capsys):
    suite = write_suite(tmp_path)
    assert main(grid_argv(suite, tmp_path, "--seeds", "2")) == 0
    runs = results(tmp_path, capsys)
    assert len(runs) == 8 and {r["state"] for r in runs} == {"finished"}
    assert Counter((r["name"], r["seed"]) for r in runs).most_common(1)[0][1] == 1
    for run in runs:
        assert 0 <= run["val_acc"] <= 100 and run["params"] == 15_882
        summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text())
        assert summary["val_acc"] == run["val_acc"] and summary["seed"] == run["seed"]
    before = {(r["name"], r["seed"]): (r["val_acc"], r["run_dir"]) for r in runs}
    # a second call finds nothing to do and changes nothing
    assert main(grid_argv(suite, tmp_path, "--seeds", "2")) == 0
    out = capsys.readouterr().out
    assert "0 newly queued" in out
    after = results(tmp_path, capsys)
    assert {(r["name"], r["seed"]): (r["val_acc"], r["run_dir"]) for r in after} == before


@pytest.mark.long
def test_top_gives_more_seeds_to_the_best_configs_by_val_only(tmp_path, capsys):
    suite = write_suite(tmp_path)
    started = time.perf_counter()
    assert main(grid_argv(suite, tmp_path)) == 0
    wall = time.perf_counter() - started
    seconds = int(re.search(r"failed in (\d+)s", capsys.readouterr().out).group(1))
    assert seconds <= wall + 1  # the grid's own wall time, not the machine's uptime
    first = {run["name"]: run["val_acc"] for run in results(tmp_path, capsys)}
    assert main(grid_argv(suite, tmp_path, "--top", "2", "--seeds", "2")) == 0
    assert "2 newly queued" in capsys.readouterr().out
    runs = results(tmp_path, capsys)
    seeded = {name for name, count in Counter(run["name"] for run in runs).items() if count == 2}
    # the two with the best seed-0 val acc got seed 1; the test set played no part
    assert len(seeded) == 2
    assert min(first[name] for name in seeded) >= max(
        val for name, val in first.items() if name not in seeded
    )
    assert len(runs) == 6


class RecordsStore:
    """A store that holds only the given finished records: what `top_configs` reads."""

    def __init__(self, records: list) -> None:
        self._records = records

    def study(self, name: str, create: bool) -> None:
        return None

    def records(self, study: None) -> list:
        return self._records


def test_top_counts_a_config_listed_under_two_names_once():
    from mnistlab.experiments.runner import top_configs
    from mnistlab.experiments.store import RunRecord

    text = QUICK_SUITE + '[[groups]]\nname = "again"\nvariants = [ { name = "sgd" } ]\n'
    suite = parse_suite(tomllib.loads(text), source="q")
    config = {cell.name: cell.config for cell in suite.cells}
    # one computation under two names
    assert config["again_sgd"].config_hash() == config["g_sgd_bs64"].config_hash()
    val = {"g_sgd_bs64": 99.5, "g_adam_bs32": 99.4, "g_sgd_bs32": 99.3, "g_adam_bs64": 99.2}

    def record(name: str) -> RunRecord:
        aliases = ("again_sgd",) if name == "g_sgd_bs64" else ()
        summary = {"val_acc": val[name], "params": 1, "val_loss": 0.1, "seconds_per_epoch": 1}
        cell_config = config[name].to_dict()
        return RunRecord(0, name, 0, name, "finished", cell_config, summary, [], "", aliases)

    best = top_configs(RecordsStore([record(name) for name in val]), suite, 2)  # type: ignore[arg-type]
    assert {cell.name for cell in best.cells} == {"g_sgd_bs64", "again_sgd", "g_adam_bs32"}


def test_top_ranks_on_seed_0_so_a_resumed_pass_picks_the_same_configs():
    """Seeds added by a --top pass must not re-rank the suite: resumed, the pass would pick a
    config whose one lucky extra seed lifted its mean, and queue seeds for it too."""
    from mnistlab.experiments.runner import top_configs
    from mnistlab.experiments.store import RunRecord

    suite = parse_suite(tomllib.loads(QUICK_SUITE), source="q")
    config = {cell.name: cell.config for cell in suite.cells}
    seed0 = {"g_sgd_bs64": 99.5, "g_adam_bs32": 99.4, "g_sgd_bs32": 99.3, "g_adam_bs64": 99.2}
    # g_adam_bs32 got its extra seeds first; they were better than g_sgd_bs64's seed 0
    extra = [("g_adam_bs32", 1, 99.9), ("g_adam_bs32", 2, 99.9)]

    def record(name: str, seed: int, val_acc: float) -> RunRecord:
        summary = {"val_acc": val_acc, "params": 1, "val_loss": 0.1, "seconds_per_epoch": 1}
        run_config = config[name].replace(seed=seed).to_dict()
        return RunRecord(0, name, seed, name, "finished", run_config, summary, [], "")

    records = [record(n, 0, v) for n, v in seed0.items()] + [record(*e) for e in extra]
    best = top_configs(RecordsStore(records), suite, 1)  # type: ignore[arg-type]
    assert [cell.name for cell in best.cells] == ["g_sgd_bs64"]


@pytest.mark.long
def test_runs_queued_for_another_device_train_on_this_one(tmp_path, capsys):
    """The device is the machine's, outside the config hash: a store queued by a GPU grid is
    finished by a CPU grid, and each summary says where it ran."""
    from mnistlab.experiments.runner import enqueue_suite

    suite = write_suite(tmp_path)
    store = RunStore(f"sqlite:///{tmp_path}/store.db")
    assert enqueue_suite(store, load_suite(suite).with_overrides(device="cuda"), 1) == 4
    assert main(grid_argv(suite, tmp_path, "--device", "cpu")) == 0
    assert "0 newly queued" in capsys.readouterr().out
    runs = results(tmp_path, capsys)
    assert {run["state"] for run in runs} == {"finished"} and len(runs) == 4
    for run in runs:
        summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text())
        assert summary["device"] == run["device"] == "cpu"


def test_top_before_the_first_pass_is_complete_is_a_one_line_error(tmp_path, capsys):
    suite = write_suite(tmp_path)
    assert main(grid_argv(suite, tmp_path, "--top", "1", "--seeds", "2", "--no-wait")) == 2
    assert "no suite 'quick' in store" in capsys.readouterr().err
    from mnistlab.experiments.runner import enqueue_suite

    enqueue_suite(RunStore(f"sqlite:///{tmp_path}/store.db"), load_suite(suite), 1)
    assert main(grid_argv(suite, tmp_path, "--top", "1", "--seeds", "2", "--no-wait")) == 2
    err = capsys.readouterr().err.strip()
    assert "4 of 4 configs of 'quick' have no finished seed-0 run yet" in err and "\n" not in err


@pytest.mark.long
def test_diverging_config_is_marked_and_the_rest_finish(tmp_path, capsys):
    text = QUICK_SUITE.replace(
        'variants = [ { name = "sgd" },',
        'variants = [ { name = "sgd" }, { name = "boom", lr = 100.0, momentum = 0.0 },',
    )
    assert main(grid_argv(write_suite(tmp_path, text), tmp_path)) == 0
    runs = {r["name"]: r for r in results(tmp_path, capsys)}
    assert runs["g_boom_bs32"]["state"] == "diverged"
    assert runs["g_boom_bs32"]["val_acc"] is None and runs["g_boom_bs32"]["test_acc"] is None
    assert sum(r["state"] == "finished" for r in runs.values()) == 4
    # a diverged run is a result: re-running the grid does not train it again
    main(grid_argv(write_suite(tmp_path, text), tmp_path))
    assert "0 newly queued" in capsys.readouterr().out


@pytest.mark.long
def test_two_grids_in_one_store_do_not_mix(tmp_path, capsys):
    other = QUICK_SUITE.replace('name = "quick"', 'name = "other"').replace(
        "axes = { batch_size = [32, 64] }", "axes = { batch_size = [32] }"
    )
    assert main(grid_argv(write_suite(tmp_path), tmp_path)) == 0
    assert main(grid_argv(write_suite(tmp_path, other, "other.toml"), tmp_path)) == 0
    assert len(results(tmp_path, capsys, "quick")) == 4
    assert len(results(tmp_path, capsys, "other")) == 2


@pytest.mark.long
def test_two_workers_split_a_grid_without_duplicates(tmp_path, capsys):
    # --threads: per worker, instead of cores // workers (3 is neither 1 nor this machine's 2)
    argv = grid_argv(write_suite(tmp_path), tmp_path, "--workers", "2", "--threads", "3")
    assert main(argv) == 0
    runs = results(tmp_path, capsys)
    assert len(runs) == 4 and all(r["state"] == "finished" for r in runs)
    assert len({r["name"] for r in runs}) == 4
    for run in runs:
        assert json.loads((Path(run["run_dir"]) / "summary.json").read_text())["threads"] == 3


def test_grid_threads_must_be_positive(tmp_path, capsys):
    assert main(grid_argv(write_suite(tmp_path), tmp_path, "--threads", "0")) == 2
    err = capsys.readouterr().err
    assert "--threads must be > 0, got 0" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # the default run covers this in tests/reliability (faster suite)
def test_two_grid_processes_on_one_sqlite_store_run_each_config_once(tmp_path, capsys):
    suite = write_suite(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "mnistlab.cli", *grid_argv(suite, tmp_path, "--seeds", "2")]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    for process in processes:
        process.wait(timeout=600)
    runs = results(tmp_path, capsys)
    finished = [(r["name"], r["seed"]) for r in runs if r["state"] == "finished"]
    assert sorted(finished) == sorted(set(finished)) and len(finished) == 8


@pytest.mark.slow  # the default run covers this in tests/reliability (faster suite)
def test_sigkill_mid_grid_then_resume_finishes_each_run_once(tmp_path, capsys):
    suite = write_suite(tmp_path)
    command = [sys.executable, "-m", "mnistlab.cli", *grid_argv(suite, tmp_path, "--seeds", "2")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    store = RunStore(f"sqlite:///{tmp_path}/store.db", heartbeat=False)
    deadline = time.monotonic() + 300
    finished_before: dict = {}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            records = store.records(store.study("quick", create=False))
        except Exception:
            continue
        finished_before = {(r.name, r.seed): r.summary for r in records if r.state == "finished"}
        if len(finished_before) >= 2:
            break
    assert finished_before, "the grid never finished a run"
    os.killpg(process.pid, signal.SIGKILL)  # the coordinator and its workers
    process.wait()
    # restarted at once: the killed runs' holder is a dead pid here, so they are taken back
    # now, not after the heartbeat grace
    assert main(grid_argv(suite, tmp_path, "--seeds", "2")) == 0
    assert "8 of 8 runs done" in capsys.readouterr().out
    runs = results(tmp_path, capsys)
    finished = [r for r in runs if r["state"] == "finished"]
    assert sorted((r["name"], r["seed"]) for r in finished) == sorted(
        {(r["name"], r["seed"]) for r in finished}
    )
    assert len(finished) == 8
    for key, summary in finished_before.items():
        again = [r for r in finished if (r["name"], r["seed"]) == key]
        assert again[0]["val_acc"] == summary["val_acc"]  # finished runs were not redone


@pytest.mark.long
def test_identical_configs_under_two_names_run_once_listed_twice(tmp_path, capsys):
    text = QUICK_SUITE + '\n[[groups]]\nname = "again"\nvariants = [ { name = "sgd" } ]\n'
    text = text.replace("axes = { batch_size = [32, 64] }", "axes = { batch_size = [64] }")
    assert main(grid_argv(write_suite(tmp_path, text), tmp_path)) == 0
    runs = results(tmp_path, capsys)
    # again_sgd has the same config (batch 64 from [base]) as g_sgd_bs64: one run
    assert len(runs) == 2
    assert [r["aliases"] for r in runs if r["name"] == "g_sgd_bs64"] == [["again_sgd"]]
    assert main(["results", "--store", f"sqlite:///{tmp_path}/store.db", "--suite", "quick"]) == 0
    assert "again_sgd (= g_sgd_bs64)" in capsys.readouterr().out


def test_seed000_suite_runs_the_settings_of_the_seeds_train_py():
    """The values in seed 000's train.py (commit c016530, lines cited in seed000.toml), not
    guesses: RandomAffine(5, translate 0.02), OneCycle(pct 0.2, div 5, final 20), StepLR x0.5,
    RMSprop(alpha 0.9, momentum 0.9), plateau x0.5 on accuracy, SGD without weight decay."""
    cells = {c.name: c.config for c in load_suite("seed000").cells}
    for config in cells.values():
        assert (config.rotate_deg, config.translate, config.epochs) == (5.0, 0.02, 20)
    sgd = cells["B_bn_do_sgd_onecycle"]
    assert (sgd.momentum, sgd.nesterov, sgd.weight_decay) == (0.9, False, 0.0)
    assert (sgd.pct_start, sgd.div_factor, sgd.final_div_factor) == (0.2, 5.0, 20.0)
    step = cells["B_bn_do_adamw_step"]
    assert (step.step_size, step.gamma, step.weight_decay) == (5, 0.5, 1e-4)
    rms = cells["B_bn_do_rmsprop_plateau"]
    assert (rms.rms_alpha, rms.momentum, rms.gamma, rms.patience) == (0.9, 0.9, 0.5, 2)
    assert rms.plateau_metric == "val_acc"  # the seed's mode="max" on accuracy, on val here


def test_seed001_and_seed004_suites_run_the_settings_of_the_seeds_code():
    """seed001 E1/E2 as its experiment_runner.py (SGD 0.01, momentum 0.9, nothing else);
    seed004 as its four notebooks (cited in seed004.toml)."""
    s001 = {c.name: c.config for c in load_suite("seed001").cells}
    for name in ("E1", "E2"):
        c = s001[name]
        assert (c.optimizer, c.lr, c.momentum, c.nesterov, c.weight_decay) == (
            "sgd",
            0.01,
            0.9,
            False,
            0.0,
        )
        assert (c.scheduler, c.rotate_deg, c.translate, c.batch_size, c.epochs) == (
            "none",
            0.0,
            0.0,
            128,
            15,
        )
    s004 = {c.name: c.config for c in load_suite("seed004").cells}
    for c in s004.values():
        assert (c.rotate_deg, c.translate, c.erase_p, c.erase_scale) == (
            7.0,
            0.08,
            0.05,
            (0.02, 0.05),
        )
        assert (c.weight_decay, c.label_smoothing, c.batch_size, c.epochs) == (1e-4, 0.05, 128, 20)
        if c.scheduler == "onecycle":
            assert (c.lr, c.pct_start, c.div_factor, c.final_div_factor) == (0.02, 0.2, 10.0, 100.0)
    fixed = s004["exp_2_sgd_fixed"]
    assert (fixed.scheduler, fixed.lr, fixed.momentum) == ("none", 0.006, 0.0)


def _record(number: int, name: str, seed: int, config, val_acc: float, epochs=()):
    from mnistlab.experiments.store import RunRecord

    summary = {"val_acc": val_acc, "params": 1, "val_loss": 0.1, "seconds_per_epoch": 1}
    run_config = config.replace(seed=seed).to_dict()
    return RunRecord(number, name, seed, name, "finished", run_config, summary, list(epochs), "")


def test_result_rows_carry_exactly_their_declared_keys():
    """ConfigRow and RunRow are what reports, compare and the API read by key: a key added to
    a row but not declared (or declared and never filled) is a reader's KeyError later."""
    from mnistlab.experiments.results import ConfigRow, RunRow, config_rows, run_rows

    suite = parse_suite(tomllib.loads(QUICK_SUITE), source="q")
    cell = suite.cells[0]
    records = [
        _record(0, cell.name, 0, cell.config, 98.0),
        _record(1, cell.name, 1, cell.config, 99.0),
    ]
    (row,) = config_rows(records)
    assert set(row) == set(ConfigRow.__annotations__)
    assert row["seeds"] == 2 and row["val_acc"].mean == 98.5
    assert all(set(r) == set(RunRow.__annotations__) for r in run_rows(records))


def test_runs_of_a_changed_config_are_not_averaged_with_the_new_ones():
    """A suite edited after a grid: the store holds E1's old runs and its new ones under one
    name. Averaging them would report neither experiment; --top must rank the current ones."""
    from mnistlab.experiments.results import config_rows
    from mnistlab.experiments.runner import top_configs

    suite = parse_suite(tomllib.loads(QUICK_SUITE), source="q")
    config = {cell.name: cell.config for cell in suite.cells}
    old = config["g_sgd_bs32"].replace(lr=0.5)  # the same name, queued by an earlier version
    records = [
        _record(0, "g_sgd_bs32", 0, old, 99.9),
        _record(1, "g_sgd_bs32", 0, config["g_sgd_bs32"], 98.0),
        _record(2, "g_sgd_bs64", 0, config["g_sgd_bs64"], 99.0),
        _record(3, "g_adam_bs32", 0, config["g_adam_bs32"], 98.5),
        _record(4, "g_adam_bs64", 0, config["g_adam_bs64"], 98.4),
    ]
    rows = {row["name"]: row for row in config_rows(records)}
    two = [name for name in rows if name.startswith("g_sgd_bs32")]
    assert len(two) == 2 and all("(config " in name for name in two)
    assert sorted(rows[name]["val_acc"].mean for name in two) == [98.0, 99.9]
    assert rows["g_sgd_bs64"]["seeds"] == 1  # a name with one config keeps its plain name
    # the old run's 99.9 must not put g_sgd_bs32 in the top 1
    best = top_configs(RecordsStore(records), suite, 1)  # type: ignore[arg-type]
    assert [cell.name for cell in best.cells] == ["g_sgd_bs64"]


def test_results_epochs_prints_each_seeds_curve_from_the_store(tmp_path, capsys):
    """Per-epoch rows stored by a finished run, as `results --epochs` prints them (the
    per-epoch table a seed's README shows); no training: the store is filled directly."""
    suite = parse_suite(tomllib.loads(QUICK_SUITE), source="q")
    config = next(cell.config for cell in suite.cells if cell.name == "g_sgd_bs32")
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = RunStore(url)
    study = store.study("quick")
    store.enqueue(study, [("g_sgd_bs32", config)])
    trial = store.claim(study)
    epochs = [
        {"epoch": e, "lr": 0.1 / e, "train_loss": 1.0 / e, "train_acc": 90.0 + e,
         "val_loss": 0.5 / e, "val_acc": 95.0 + e, "test_acc": 94.0 + e, "seconds": 2.0}
        for e in (1, 2, 3)
    ]  # fmt: skip
    summary = {"val_acc": 98.0, "test_acc": 96.5, "best_epoch": 3, "params": 1}
    assert store.finish(trial._trial_id, summary, epochs)
    assert main(["results", "--store", url, "--epochs", "g_sgd_bs32", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "seed,trial,epoch,lr,train_loss,train_acc,val_loss,val_acc,test_acc,seconds"
    assert lines[3].split(",")[:3] == ["0", "0", "3"] and lines[3].split(",")[7] == "98.0"
    assert main(["results", "--store", url, "--epochs", "g_sgd_bs32"]) == 0
    out = capsys.readouterr().out
    assert "g_sgd_bs32 seed 0" in out and "97.00" in out  # epoch 3's test_acc, 2 decimals
    assert "best epoch on val: 3; test accuracy there, measured once: 96.50%" in out
    assert main(["results", "--store", url, "--epochs", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown config 'nosuch'" in err and "g_sgd_bs32" in err


def test_the_heartbeat_timing_is_kept_in_the_store_for_every_process(tmp_path):
    """Every process on a store must take a run back after the same silence: the timing is
    the study's, read by whoever opens it (here a second store object, as another machine)."""
    from mnistlab.experiments.heartbeat import Timing
    from mnistlab.experiments.storage import StoreError

    url = f"sqlite:///{tmp_path}/store.db"
    study = RunStore(url).study("s")
    assert RunStore(url).timing(study) == Timing()  # nothing stored: the defaults, 20 s / 60 s
    RunStore(url).set_timing(study, Timing(heartbeat_seconds=2, grace_seconds=7))
    other = RunStore(url)
    assert other.timing(other.study("s", create=False)) == Timing(2, 7)
    assert Timing(2, 7).poll_seconds == 1.75  # a quarter of the grace, within 0.5..5 s
    with pytest.raises(StoreError, match="below grace_seconds"):
        Timing(heartbeat_seconds=60, grace_seconds=60)


def test_one_heartbeat_thread_beats_for_each_run_held_and_stops(tmp_path):
    """grid and tune both hold runs through `RunStore.heartbeats`: each added run's heartbeat
    is renewed while held, and not after it is discarded or the thread stops."""
    from mnistlab.experiments.heartbeat import Timing

    store = RunStore(f"sqlite:///{tmp_path}/store.db")
    study = store.study("s")
    store.set_timing(study, Timing(heartbeat_seconds=0.2, grace_seconds=5))
    first, second = study.ask(), study.ask()
    for trial in (first, second):
        store.own(trial._trial_id)
    time.sleep(1.2)  # SQLite's CURRENT_TIMESTAMP has whole seconds
    with store.heartbeats(study) as beats:
        beats.add(first._trial_id)
        time.sleep(1.0)
        ages = store.heartbeat_ages([first._trial_id, second._trial_id])
        assert ages[first._trial_id] < 1.0 <= ages[second._trial_id]
        beats.discard(first._trial_id)
    assert not beats.thread.is_alive()
