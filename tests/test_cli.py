import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.errors import first_line

SEED_COUNTS = {"tiny": 15_882, "enhanced": 19_306, "compact": 18_472, "s004": 18_662}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_models_json_lists_seed_models(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    assert code == 0
    listed = {entry["name"]: entry["params"] for entry in json.loads(out)}
    for name, params in SEED_COUNTS.items():
        assert listed[name] == params


def test_data_verifies_shared_files(capsys, mnist_dir):
    code, out, _ = run_cli(capsys, "data", "--data-dir", str(mnist_dir), "--no-download")
    assert code == 0 and "verified" in out


@pytest.mark.long
def test_train_one_epoch_writes_run_dir(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "train",
        "--model",
        "tiny",
        "--epochs",
        "1",
        "--train-subset",
        "2000",
        "--val-size",
        "2000",
        "--out",
        str(out_dir),
        "--name",
        "smoke",
        "--desc",
        "cli test",
        "--no-progress",
        "--device",
        "cpu",
    )
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["name"] == "smoke" and summary["train_size"] == 2000
    assert 'desc = "cli test"' in (out_dir / "config.toml").read_text()
    assert "test_acc" in out


@pytest.mark.long
def test_train_threads_sets_them_for_the_run_only_and_records_them(capsys, tmp_path):
    import torch

    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2
    out_dir = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", "--threads", str(threads), "--epochs", "1", "--train-subset", "500",
        "--val-size", "500", "--out", str(out_dir), "--no-progress", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((out_dir / "summary.json").read_text())["threads"] == threads
    assert torch.get_num_threads() == before
    code, _, err = run_cli(capsys, "train", "--threads", "0", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--threads must be > 0, got 0" in err
    assert not (tmp_path / "bad").exists()


def test_train_refuses_to_overwrite(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("earlier results")
    code, _, err = run_cli(capsys, "train", "--epochs", "1", "--out", str(tmp_path))
    assert code == 2 and "not empty" in err
    assert (tmp_path / "keep.txt").read_text() == "earlier results"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--model", "resnet50"], "valid choices"),
        (["train", "--optimizer", "lion"], "valid choices: adam, adamw, rmsprop, sgd"),
        (["train", "--scheduler", "linear"], "valid choices"),
        (["train", "--activation", "tanh"], "relu"),
        (["train", "--epochs", "0"], "epochs must be > 0"),
        (["train", "--batch-size", "-4"], "batch_size must be > 0"),
        (["train", "--train-subset", "999999", "--epochs", "1"], "train_subset"),
        (["train", "--config", "/nonexistent/c.toml"], "no such file"),
        (["train", "--model-opt", "bogus=1"], "bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, fragment):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--epochs", "x"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_argparse_errors_are_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_bad_config_file_values(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('epochs = -3\nlr = "fast"\n')
    code, _, err = run_cli(capsys, "train", "--config", str(path))
    assert code == 2 and "bad.toml" in err and len(err.strip().splitlines()) == 1


def test_console_script_is_installed():
    exe = shutil.which("mnistlab") or str(
        __import__("pathlib").Path(sys.executable).parent / "mnistlab"
    )
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "train" in result.stdout


def test_out_of_gpu_memory_is_one_line_exit_1(capsys, monkeypatch, tmp_path):
    """Seen on an H100 (lab/gpu/smoke-3e3e42f.txt): a CUDA OOM in `train` was a traceback."""
    import torch

    from mnistlab.cli import train as train_cli

    def out_of_memory(args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_cli, "cmd_train", out_of_memory)
    code = main(["train", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "out of GPU memory" in err[0] and "--batch-size" in err[0]


def test_other_exceptions_still_raise(monkeypatch, tmp_path):
    from mnistlab.cli import train as train_cli

    def broken(args):
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(train_cli, "cmd_train", broken)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--epochs", "1", "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("command", ["grid seed003", "tune --space budget8k --trials 2"])
def test_unusable_device_is_refused_before_anything_runs(capsys, tmp_path, monkeypatch, command):
    """`tune --device cuda` without a GPU used to fail every trial and count each one."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    store = tmp_path / "store.db"
    argv = [*command.split(), "--device", "cuda", "--store", f"sqlite:///{store}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "device 'cuda' requested but CUDA is not available" in err and "\n" not in err
    assert not store.exists()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("bad shape\n  at layer 3"), "bad shape"),
        (RuntimeError("\n\n  CUDA out of memory.  \nTried to allocate"), "CUDA out of memory."),
        (KeyError(), "KeyError"),  # no message: its type's name
        (OSError("   "), "OSError"),
    ],
)
def test_one_line_errors_quote_the_first_non_blank_line(error, expected):
    assert first_line(error) == expected


def test_help_is_built_without_importing_torch():
    """`mnistlab --help` must not wait for torch (about 1 s to import): the parser and every
    command's flags are built from light modules; torch comes with the command that needs it."""
    import subprocess
    import sys

    probe = (
        "import sys, mnistlab.cli as cli; cli.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'optuna', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_suites_show_prints_the_shipped_toml(capsys):
    import tomllib

    from mnistlab.cli import main
    from mnistlab.experiments.suites import builtin_suites

    assert main(["suites", "--show", "seed000"]) == 0
    out = capsys.readouterr().out
    assert (
        out == builtin_suites()["seed000"].read_text() and tomllib.loads(out)["name"] == "seed000"
    )
    assert main(["suites", "--show", "nope"]) == 2
    assert "valid choices: ablations, budgets" in capsys.readouterr().err


def test_examples_are_copied_from_the_installed_package(capsys, tmp_path):
    from mnistlab.cli import main

    assert main(["examples", str(tmp_path / "ex")]) == 0
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert names == ["nets.py", "own_model.ipynb", "own_space.toml", "own_suite.toml"]
    assert main(["summary", str(tmp_path / "ex" / "nets.py") + ":CourseNet"]) == 0
    capsys.readouterr()
    assert main(["examples", str(tmp_path / "ex")]) == 2  # nothing overwritten
    assert "already has nets.py" in capsys.readouterr().err


def test_grid_run_directories_go_beside_a_sqlite_store():
    import argparse

    from mnistlab.cli.grid import runs_root

    def root(store: str, runs_dir: str | None = None) -> Path:
        return runs_root(argparse.Namespace(store=store, runs_dir=runs_dir))

    assert root("sqlite:///runs/mnistlab.db") == Path("runs")  # the default store: as before
    assert root("sqlite:///lab/x/grid.db") == Path("lab/x")
    assert root("sqlite:////abs/grid.db") == Path("/abs")
    assert root("postgresql://host/db") == Path("runs")
    assert root("sqlite:///lab/x/grid.db", "elsewhere") == Path("elsewhere")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--out", "{file}/sub", "--epochs", "1"], "is a file, not a directory"),
        (["grid", "seed004", "--device", "nosuch", "--store", "sqlite:///{tmp}/x.db"],
         "unknown device 'nosuch'; valid choices: auto, cpu, cuda, mps"),
    ],
)  # fmt: skip
def test_clumsy_paths_and_devices_are_one_line_errors(capsys, tmp_path, argv, fragment):
    from mnistlab.cli import main

    (tmp_path / "afile").write_text("")
    values = {"file": str(tmp_path / "afile"), "tmp": str(tmp_path)}
    code = main([arg.format(**values) for arg in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0]
