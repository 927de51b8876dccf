"""A network the user wrote, in a file outside the package (issue 15): summary, fit, train,
a suite with a relative model path, export, the Python API, provenance warnings of eval and
predict when the file changes, and every kind of bad model as one line and exit code 2."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import linecache
import re
import textwrap
import tomllib
from pathlib import Path

import pytest
from torch import nn

import mnistlab
from mnistlab.cli import main
from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError
from quick_config import QUICK_BASE, quick_base

REPO = Path(__file__).resolve().parents[1]
DIGIT = REPO / "docs" / "digits" / "two-thin-pen.png"
API_QUICK = {key: value for key, value in QUICK_BASE.items() if key != "model"}

# BatchNorm, dropout, a GAP head and a `width` option, as the seeds write their nets
NETS = textwrap.dedent(
    """\
    from torch import nn


    class Net(nn.Module):
        def __init__(self, width: float = 1.0, dropout: float = 0.05):
            super().__init__()
            c1, c2 = max(1, round(8 * width)), max(1, round(16 * width))
            self.body = nn.Sequential(
                nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(dropout),
                nn.Conv2d(c2, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )

        def forward(self, x):
            return self.body(x)


    def make_net(width: float = 1.0):
        return Net(width=width)
    """
)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_nets(folder: Path, text: str = NETS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nets.py"
    path.write_text(text)
    return path


def torch_params(path: Path, attribute: str = "Net", **options) -> int:
    """The parameter count as torch itself gives it, for the file loaded here independently."""
    spec = importlib.util.spec_from_file_location(f"own_nets_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, attribute)(**options)
    return sum(p.numel() for p in model.parameters())


def quick_flags() -> list[str]:
    """QUICK_BASE (tests/quick_config.py) as `train` flags, the model left to each test."""
    flags = []
    for key, value in QUICK_BASE.items():
        if key != "model":
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return [*flags, "--no-progress"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One quick CLI run of `nets.py:make_net` (width 1.5) in a folder of its own."""
    folder = tmp_path_factory.mktemp("own-trained")
    nets = write_nets(folder / "models")
    run_dir = folder / "run"
    code = main(
        ["train", "--model", f"{nets}:make_net", "--model-opt", "width=1.5", "--out", str(run_dir)]
        + quick_flags()
    )
    assert code == 0
    return nets, run_dir


# -- the CLI path ---------------------------------------------------------------------------


def test_summary_json_counts_params_like_torch(capsys, tmp_path, monkeypatch):
    nets = write_nets(tmp_path)
    monkeypatch.chdir(tmp_path)  # the reference as a user types it, relative to the cwd
    code, out, err = run_cli(
        capsys, "summary", "nets.py:Net", "--model-opt", "width=2", "--max-params", "8000", "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    assert isinstance(record["params"], int)
    assert record["params"] == torch_params(nets, width=2.0)
    assert sum(layer["params"] for layer in record["layers"]) == record["params"]
    checks = {item["check"]: item["ok"] for item in record["checks"]}
    assert checks["params < 8,000"] is True
    assert checks["BatchNorm"] is True and checks["dropout"] is True
    assert checks["GAP head (no dense > 1,000)"] is True


def test_fit_finds_the_widest_net_under_the_budget(capsys, tmp_path):
    nets = write_nets(tmp_path)
    code, out, err = run_cli(
        capsys, "fit", "--model", f"{nets}:make_net", "--max-params", "5000", "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["option"] == "width"
    width = record["width"]
    assert record["params"] == torch_params(nets, width=width) < 5000
    # one 0.01 step wider breaks the budget: the fit is the largest, not just an admissible one
    wider = (round(width * 100) + 1) / 100
    assert torch_params(nets, width=wider) >= 5000


def test_train_stores_the_source_and_its_sha256(trained):
    nets, run_dir = trained
    config = tomllib.loads((run_dir / "config.toml").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert config["model"] == f"{nets}:make_net"
    assert config["model_options"] == {"width": 1.5}
    assert config["model_sha256"] == sha256(run_dir / "model_source.py") == sha256(nets)
    assert summary["model_sha256"] == config["model_sha256"]
    assert summary["model_source"] == "model_source.py"
    assert summary["params"] == torch_params(nets, "make_net", width=1.5)
    assert 0.0 <= summary["val_acc"] <= 100.0 and 0.0 <= summary["test_acc"] <= 100.0


@pytest.mark.long
def test_suite_with_a_relative_model_path(capsys, tmp_path, monkeypatch):
    suites = tmp_path / "suites"
    nets = write_nets(suites)
    (suites / "mine.toml").write_text(
        'name = "mine"\n[base]\n'
        + quick_base(model="nets.py:Net")
        + textwrap.dedent(
            """\
            [[groups]]
            name = "own"
            variants = [
              { name = "net" },
              { name = "factory_half", model = "nets.py:make_net", width = 0.5 },
            ]
            """
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # nets.py is found beside the suite, not in the cwd
    store = f"sqlite:///{tmp_path}/store.db"
    code, _, err = run_cli(
        capsys,
        "grid",
        str(suites / "mine.toml"),
        "--store",
        store,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    )
    assert code == 0, err
    code, out, err = run_cli(capsys, "results", "--store", store, "--suite", "mine", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == {"own_net", "own_factory_half"}
    assert all(row["state"] == "finished" for row in rows.values())
    assert rows["own_net"]["params"] == torch_params(nets)
    assert rows["own_factory_half"]["params"] == torch_params(nets, width=0.5)
    for row in rows.values():
        run_dir = Path(row["run_dir"])
        assert sha256(run_dir / "model_source.py") == sha256(nets)
        assert tomllib.loads((run_dir / "config.toml").read_text())["model"].startswith(f"{nets}:")


def test_export_to_onnx(capsys, trained, tmp_path):
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(
            module, reason=f"{module} not importable (pip install 'mnistlab[onnx]')"
        )
    _, run_dir = trained
    out_file = tmp_path / "own.onnx"
    code, out, err = run_cli(
        capsys,
        "export",
        "--checkpoint",
        str(run_dir / "best.pt"),
        "--onnx",
        str(out_file),
        "--parity-images",
        "200",
        "--repeats",
        "1",
        "--no-download",
    )
    assert code == 0, err
    assert "parity check passed" in out and out_file.stat().st_size > 0
    assert "warning" not in err  # the file is unchanged: nothing to warn about


def eval_json(capsys, checkpoint: Path) -> tuple[dict, str]:
    code, out, err = run_cli(capsys, "eval", "--checkpoint", str(checkpoint), "--json")
    assert code == 0, err
    return json.loads(out), err


@pytest.mark.long
def test_eval_and_predict_warn_when_the_model_file_changed(capsys, trained):
    nets, run_dir = trained
    checkpoint = run_dir / "best.pt"
    recorded = json.loads((run_dir / "summary.json").read_text())["val_acc"]
    before, err = eval_json(capsys, checkpoint)
    assert before["val_acc"] == pytest.approx(recorded, abs=0.005)
    assert "warning" not in err
    original = nets.read_text()
    try:
        # a different architecture: today's code could not even take the trained weights
        nets.write_text(original.replace("16 * width", "24 * width"))
        after, err = eval_json(capsys, checkpoint)
        assert after["val_acc"] == before["val_acc"] and after["test_acc"] == before["test_acc"]
        assert re.fullmatch(
            r"mnistlab: warning: model file \S*nets\.py changed since this run was trained; "
            r"using the copy saved with the run \(\S*model_source\.py\)\n",
            err,
        ), err
        code, out, err = run_cli(capsys, "predict", "--checkpoint", str(checkpoint), str(DIGIT))
        assert code == 0 and DIGIT.name in out
        assert "mnistlab: warning: model file" in err and "changed" in err
        nets.unlink()
        after, err = eval_json(capsys, checkpoint)
        assert after["val_acc"] == before["val_acc"]
        assert "is missing since this run was trained" in err
    finally:
        nets.write_text(original)


# -- the Python API -------------------------------------------------------------------------


class ApiNet(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        channels = max(1, round(8 * width))
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 10, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.body(x)


def make_api_net(width: float = 1.0) -> nn.Module:
    return ApiNet(width)


def test_api_trains_a_module_instance(tmp_path):
    model = ApiNet()
    run = mnistlab.train(model, epochs=1, train_subset=2000, out=tmp_path / "run")
    assert isinstance(run.val_acc, float) and 0.0 <= run.val_acc <= 100.0
    assert isinstance(run.test_acc, float) and 0.0 <= run.test_acc <= 100.0
    assert run.best_epoch == 1 and len(run.rows) == 1
    assert run.rows[0]["val_acc"] == run.val_acc
    assert run.params == sum(p.numel() for p in model.parameters())
    assert run.run_dir == tmp_path / "run" and (run.run_dir / "best.pt").is_file()
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["val_acc"] == run.val_acc and summary["model"].endswith(":ApiNet")
    source = run.run_dir / "model_source.py"
    assert "class ApiNet" in source.read_text()
    assert summary["model_sha256"] == sha256(source)


@pytest.mark.parametrize("model", [ApiNet, make_api_net], ids=["class", "factory"])
def test_api_trains_a_class_or_factory_with_options(tmp_path, model):
    run = mnistlab.train(
        model,
        model_options={"width": 2.0},
        out=tmp_path / "run",
        progress=False,
        **API_QUICK,
    )
    assert run.params == sum(p.numel() for p in ApiNet(2.0).parameters())
    assert run.config.model_options == {"width": 2.0}
    assert isinstance(run.val_acc, float) and isinstance(run.test_acc, float)
    assert len(run.plot().axes) == 2


def test_api_says_when_a_model_has_no_findable_source(tmp_path):
    # a class built at run time: Python has no source for it, and the run record says so
    dynamic = type("Dynamic", (ApiNet,), {})
    run = mnistlab.train(dynamic, out=tmp_path / "run", progress=False, **API_QUICK)
    assert run.summary["model_source"].startswith("unavailable")
    assert not (tmp_path / "run" / "model_source.py").exists()


@pytest.mark.long
def test_api_grid_runs_a_suite_of_user_models(tmp_path):
    # the suite's own model file is code this process was given: its runs are not left queued
    write_nets(tmp_path)
    suite = tmp_path / "mine.toml"
    suite.write_text(
        f'name = "mine"\n[base]\n{quick_base(model="nets.py:Net")}'
        '[[groups]]\nname = "g"\nvariants = [ { name = "half", width = 0.5 } ]\n'
    )
    store = f"sqlite:///{tmp_path}/store.db"
    rows = mnistlab.grid(suite, store=store, runs_dir=tmp_path / "runs", progress=False)
    assert [(row["name"], row["seeds"]) for row in rows] == [("g_half", 1)]
    runs = mnistlab.results("mine", store=store, runs=True)
    assert [run["state"] for run in runs] == ["finished"]


def test_api_summary_and_fit(tmp_path):
    info = mnistlab.summary(ApiNet, max_params=8000, width=2.0)
    assert info.params == sum(p.numel() for p in ApiNet(2.0).parameters())
    assert info.to_dict()["params"] == info.params
    nets = write_nets(tmp_path)
    fitted = mnistlab.fit(f"{nets}:make_net", 5000)
    assert fitted.params == torch_params(nets, width=fitted.width) < 5000


# -- bad models: one line on stderr, exit 2, nothing created --------------------------------

BAD_FILES = {
    "syntax": ("import torch\ndef make(:\n    pass\n", "make", [r"bad\.py:2: SyntaxError"]),
    "import": (
        "import torch\n\nimport not_a_module_mnistlab_test\n",
        "make",
        [r"bad\.py:3: ModuleNotFoundError", "not_a_module_mnistlab_test"],
    ),
    "attribute": (
        NETS,
        "Nett",
        [r"no attribute 'Nett'", r"nn\.Module classes and functions there: Net, make_net"],
    ),
    "not_a_model": (NETS + "LAYERS = 3\n", "LAYERS", [r"LAYERS is of type int, not an nn\.Module"]),
    "factory_raises": (
        "def make(width: float = 1.0):\n    raise ValueError('width too odd')\n",
        "make",
        [r"building it raised ValueError: width too odd"],
    ),
    "wrong_output": (
        "from torch import nn\n\ndef make(width: float = 1.0):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 7))\n",
        "make",
        [r"output \[2, 7\] for a \[2, 1, 28, 28\] input; expected \[N, 10\]"],
    ),
    "frozen": (
        "from torch import nn\n\ndef make(width: float = 1.0):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).requires_grad_(False)\n",
        "make",
        [r"has no trainable parameters"],
    ),
}


def assert_one_line_exit_2(code: int, err: str, patterns: list[str]) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for pattern in patterns:
        assert re.search(pattern, err), (pattern, err)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_model_file_is_one_line(capsys, tmp_path, monkeypatch, case):
    text, attribute, patterns = BAD_FILES[case]
    (tmp_path / "bad.py").write_text(text)
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", "--model", f"bad.py:{attribute}", "--out", str(out_dir), *quick_flags()
    )
    assert_one_line_exit_2(code, err, patterns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]  # no run dir, no runs/


def test_missing_model_file_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["train", "--model", "nowhere.py:Net", "--out", str(tmp_path / "run"), *quick_flags()],
        ["summary", "nowhere.py:Net"],
        ["fit", "--model", "nowhere.py:Net", "--max-params", "5000"],
    ):
        code, _, err = run_cli(capsys, *argv)
        assert_one_line_exit_2(code, err, [r"nowhere\.py: no such file"])
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_option_names_the_accepted_ones(capsys, tmp_path, monkeypatch):
    write_nets(tmp_path)
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        "--model",
        "nets.py:Net",
        "--model-opt",
        "depth=3",
        "--out",
        str(out_dir),
        *quick_flags(),
    )
    assert_one_line_exit_2(code, err, [r"unknown option 'depth'", r"dropout, width"])
    assert not out_dir.exists()
    with pytest.raises(ConfigError, match=r"unknown option 'depth'.*accepted options: width"):
        mnistlab.train(ApiNet, model_options={"depth": 3}, out=out_dir, progress=False)
    assert not out_dir.exists()


def test_fit_says_when_a_model_cannot_fit_or_has_nothing_to_scale(capsys, tmp_path):
    nets = write_nets(
        tmp_path,
        "from torch import nn\n\ndef make(width: float = 1.0):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n\n"
        "def fixed():\n    return make()\n",
    )
    code, _, err = run_cli(capsys, "fit", "--model", f"{nets}:make", "--max-params", "1000")
    assert_one_line_exit_2(code, err, [r"cannot fit under 1,000 params", r"has 7,850"])
    code, _, err = run_cli(capsys, "fit", "--model", f"{nets}:fixed", "--max-params", "1000")
    assert_one_line_exit_2(code, err, [r"no numeric option to scale", r"width: float = 1\.0"])


@pytest.mark.parametrize(
    ("variant", "fragment"),
    [
        ('{ name = "a", model = "nowhere.py:Net" }', r"nowhere\.py: no such file"),
        ('{ name = "a", model_options = { depth = 2 } }', r"option 'depth'.*dropout, width"),
    ],
    ids=["missing_file", "unknown_option"],
)
def test_bad_model_in_a_suite_creates_no_store_entry(capsys, tmp_path, variant, fragment):
    write_nets(tmp_path)
    suite = tmp_path / "bad.toml"
    suite.write_text(
        f'name = "bad"\n[base]\n{quick_base(model="nets.py:Net")}'
        f'[[groups]]\nname = "g"\nvariants = [ {variant} ]\n'
    )
    code, _, err = run_cli(
        capsys,
        "grid",
        str(suite),
        "--store",
        f"sqlite:///{tmp_path}/store.db",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    )
    assert_one_line_exit_2(code, err, [r"bad\.toml", fragment])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "nets.py"]


def test_fit_refuses_an_option_that_does_not_change_the_count(capsys, tmp_path):
    nets = write_nets(tmp_path)
    code, _, err = run_cli(
        capsys, "fit", "--model", f"{nets}:Net", "--max-params", "8000", "--option", "dropout"
    )
    assert_one_line_exit_2(code, err, ["does not change the parameter count"])


NOTEBOOK_CELL = textwrap.dedent(
    """
    from torch import nn


    class CellNet(nn.Module):
        def __init__(self, width: float = 1.0):
            super().__init__()
            c = max(2, round(6 * width))
            self.body = nn.Sequential(
                nn.Conv2d(1, c, 3), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(c, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )

        def forward(self, x):
            return self.body(x)


    RAN_AGAIN = []
    RAN_AGAIN.append("the rest of the cell")
    """
)


def test_a_class_from_a_notebook_cell_is_saved_and_evaluates(capsys, tmp_path):
    # IPython keeps a cell's text in linecache under the name its code objects carry
    name = "<ipython-input-7-0123456789ab>"
    linecache.cache[name] = (len(NOTEBOOK_CELL), None, NOTEBOOK_CELL.splitlines(True), name)
    namespace = {"__name__": "__main__"}
    exec(compile(NOTEBOOK_CELL, name, "exec"), namespace)
    run = mnistlab.train(
        namespace["CellNet"], out=tmp_path / "run", progress=False, log=None, **API_QUICK
    )
    copy = (tmp_path / "run" / "model_source.py").read_text()
    assert run.summary["model_source"] == "model_source.py"
    assert "class CellNet" in copy and "RAN_AGAIN" not in copy  # the definition, not the cell
    assert run.summary["model_sha256"] == hashlib.sha256(copy.encode()).hexdigest()
    figures, err = eval_json(capsys, tmp_path / "run" / "best.pt")
    assert figures["val_acc"] == round(run.val_acc, 4) and "warning" not in err


@pytest.mark.long
def test_tune_searches_a_user_model_named_relative_to_its_space(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "search"
    folder.mkdir()
    nets = write_nets(folder)
    base = quick_base(model="nets.py:Net", max_params=3000)
    (folder / "space.toml").write_text(
        f'name = "mine"\n[base]\n{base}\n[params]\nlr = {{ low = 0.01, high = 0.1, log = true }}\n'
    )
    monkeypatch.chdir(tmp_path)  # not the space's folder: the path is relative to the file
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["tune", "--space", str(folder / "space.toml"), "--trials", "2", "--store", url]
    code, _, err = run_cli(capsys, *argv, "--pruner", "none", "--runs-dir", str(tmp_path / "r"))
    assert code == 0, err
    code, out, _ = run_cli(capsys, "results", "--store", url, "--json")
    runs = json.loads(out)
    assert len(runs) == 2 and {r["state"] for r in runs} == {"finished"}
    assert all(r["params"] < 3000 for r in runs)
    stored = [TrainConfig.from_dict(config) for config in _trial_configs(url, "mine")]
    assert {c.model for c in stored} == {f"{nets.resolve()}:Net"}
    assert {c.model_sha256 for c in stored} == {sha256(nets)}


def _trial_configs(url: str, study: str) -> list[dict]:
    import optuna

    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    return [t.user_attrs["config"] for t in trials]


def _state(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.long
def test_api_gives_back_the_model_chosen_on_val(tmp_path):
    """`result.model` holds best.pt's weights (chosen on val), and so does an instance passed
    in, after the call; last.pt keeps the last epoch's."""
    import torch

    model = ApiNet()
    run = mnistlab.train(model, out=tmp_path / "run", progress=False, log=None, **API_QUICK)
    assert run.model is model and not model.training
    best = _state(run.run_dir / "best.pt")
    assert all(torch.equal(best[k], v.cpu()) for k, v in model.state_dict().items())
    by_class = mnistlab.train(ApiNet, out=tmp_path / "class", progress=False, log=None, **API_QUICK)
    best = _state(by_class.run_dir / "best.pt")
    assert isinstance(by_class.model, ApiNet)
    assert all(torch.equal(best[k], v.cpu()) for k, v in by_class.model.state_dict().items())


def test_api_fits_a_class_defined_in_python_to_a_budget(tmp_path):
    fitted = mnistlab.fit(ApiNet, 2000)  # 826 params at width 1, 3,274 at 4
    assert fitted.params < 2000 <= sum(p.numel() for p in ApiNet(fitted.width + 0.01).parameters())
    run = mnistlab.train(
        ApiNet, max_params=2000, out=tmp_path / "run", progress=False, log=None, **API_QUICK
    )
    assert run.params == fitted.params and run.config.model_options == {"width": fitted.width}
    with pytest.raises(ConfigError, match="not an instance: pass the class"):
        mnistlab.train(ApiNet(), max_params=2000, **API_QUICK)


def test_api_history_is_a_table_with_rounded_figures(tmp_path):
    from mnistlab.api import History, history_table

    rows = [{"epoch": 1, "lr": 0.05, "val_acc": 21.50000035762787, "test_acc": None}]
    table = history_table(rows)
    try:
        import pandas  # noqa: F401
    except ImportError:
        assert isinstance(table, History) and table[0] == {"epoch": 1, "lr": 0.05, "val_acc": 21.5}
        assert repr(table).splitlines()[0].split() == ["epoch", "lr", "val_acc"]
    else:
        assert list(table.columns) == ["lr", "val_acc"] and table.loc[1, "val_acc"] == 21.5


@pytest.mark.long
def test_api_names_runs_after_the_model_and_refuses_a_used_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = mnistlab.train(ApiNet, progress=False, **API_QUICK)
    assert run.run_dir == Path("runs") / "ApiNet" and run.config.name == "ApiNet"
    assert "epoch 1/1" in capsys.readouterr().out  # one line per epoch, kept after the bar
    again = mnistlab.train(ApiNet, progress=False, log=None, **API_QUICK)
    assert again.run_dir == Path("runs") / "ApiNet-2"
    with pytest.raises(ConfigError, match=r"out=runs/ApiNet exists .*pass a new out="):
        mnistlab.train(ApiNet, out="runs/ApiNet", **API_QUICK)


def test_api_errors_render_in_one_line_in_ipython():
    error = ConfigError("unknown key 'lrr'")
    assert error._render_traceback_() == ["ConfigError: unknown key 'lrr'"]


@pytest.mark.long
def test_a_run_too_short_for_its_schedule_says_what_would_work(tmp_path):
    """The default recipe's OneCycle over 16 steps ends at chance: a line says so; the quick
    recipe learns in the same step count (83.6% val measured, seed 0)."""
    lines: list[str] = []
    mnistlab.train("tiny", epochs=1, train_subset=2000, out=tmp_path / "a", progress=False,
                   log=lines.append)  # fmt: skip
    advice = [line for line in lines if line.startswith("note: only 16 optimizer steps")]
    assert advice and "--recipe quick" in advice[0]
    quick = mnistlab.train("tiny", recipe="quick", epochs=1, train_subset=2000,
                           out=tmp_path / "b", progress=False, log=lines.append)  # fmt: skip
    assert quick.val_acc > 75.0
