"""A shared store is not a way to run code: workers run only model code they were given."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna
import pytest

from mnistlab.cli import main
from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError
from mnistlab.experiments.store import RunStore
from mnistlab.run.trust import TrustedModels, check_unchanged
from quick_config import quick_base

NET = """
from torch import nn


def make_net(width: float = 1.0) -> nn.Module:
    channels = max(1, round(4 * width))
    return nn.Sequential(
        nn.Conv2d(1, channels, 3), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(4),
        nn.Conv2d(channels, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "nets.py").write_text(NET)
    (folder / "suite.toml").write_text(
        'name = "mine"\n[base]\n'
        + quick_base(model="nets.py:make_net")
        + '[[groups]]\nname = "g"\n'
        + 'variants = [{ name = "a", width = 1.0 }, { name = "b", width = 2.0 }]\n'
    )
    return folder


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_localize_runs_only_given_code(tmp_path: Path) -> None:
    mine = tmp_path / "nets.py"
    mine.write_text(NET)
    trusted = TrustedModels.of([], [mine])
    assert trusted.localize({"model": "tiny"}) == {"model": "tiny"}
    # another machine's path to the same content runs this machine's copy
    stored = {"model": "/elsewhere/nets.py:make_net", "model_sha256": _sha(NET)}
    assert trusted.localize(stored) == {**stored, "model": f"{mine.resolve()}:make_net"}
    assert (
        trusted.localize({"model": "/elsewhere/nets.py:make_net", "model_sha256": "0" * 64}) is None
    )
    assert trusted.localize({"model": "os:system", "model_sha256": ""}) is None
    assert "not code this process was given" in trusted.refusal({"model": "os:system"})


@pytest.mark.long
def test_grid_with_a_relative_model_file_then_a_worker_refuses_foreign_code(
    suite_dir: Path, tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    common = ["--store", url, "--data-dir", str(mnist_dir), "--runs-dir", str(tmp_path / "runs")]
    assert main(["grid", str(suite_dir / "suite.toml"), *common, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["results", "--store", url, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert sorted(r["state"] for r in runs) == ["finished", "finished"]

    # a trial planted in the shared store that names code no worker was given
    marker = tmp_path / "pwned"
    store = RunStore(url)
    planted = TrainConfig(
        name="evil", model="os:system", model_options={"command": f"touch {marker}"}
    )
    store.enqueue(store.study("mine"), [("evil", planted)])
    code = main(["worker", "--suite", str(suite_dir / "suite.toml"), *common, "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "evil s0: refused" in out + err and "left for others" in out
    assert not marker.exists()
    states = {
        t.user_attrs["name"]: t.state
        for t in optuna.load_study(study_name="mine", storage=url).get_trials()
    }
    assert states["evil"] == optuna.trial.TrialState.WAITING  # left queued, untouched


@pytest.mark.long
def test_a_changed_model_file_is_not_mixed_into_its_grid(
    suite_dir: Path, tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    common = ["--store", url, "--data-dir", str(mnist_dir), "--runs-dir", str(tmp_path / "runs")]
    argv = ["grid", str(suite_dir / "suite.toml"), *common, "--no-progress"]
    assert main(argv) == 0
    (suite_dir / "nets.py").write_text(NET + "\n# tuned the stem\n")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nets.py changed since run 'g_a' was queued" in err and "restore the file" in err


def test_check_unchanged_passes_same_code_and_registered_models() -> None:
    config = TrainConfig(name="a", model="/x/nets.py:Net", model_sha256="1" * 64)
    stored = [{"name": "a", "config": config.to_dict()}, {"name": "t", "config": {"model": "tiny"}}]
    check_unchanged(stored, [config, TrainConfig(name="t")])
    with pytest.raises(ConfigError, match="changed since"):
        check_unchanged(stored, [config.replace(model_sha256="2" * 64)])


def test_a_checkpoint_naming_code_runs_nothing_without_its_saved_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # weights load with weights_only=True; the config's model must not become a way in either
    import torch

    from mnistlab.run.checkpoint import checkpoint_payload

    marker = tmp_path / "pwned"
    tiny = torch.nn.Linear(1, 1)
    for model, sha in (("os:system", ""), ("subprocess:run", "0" * 64)):
        config = TrainConfig(model=model, model_sha256=sha, model_options={"args": "x"})
        payload = checkpoint_payload(tiny, config)
        payload["config"]["model_options"] = {"command": f"touch {marker}"}
        path = tmp_path / f"{model.replace(':', '_')}.pt"
        torch.save(payload, path)
        assert main(["predict", "--checkpoint", str(path), str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "builds it only from the model_source.py" in err
    assert not marker.exists()
    # a copy beside it that is not the recorded code is refused too
    (tmp_path / "model_source.py").write_text("import os\nos.system('touch pwned')\n")
    config = TrainConfig(model="/x/nets.py:Net", model_sha256="1" * 64)
    torch.save(checkpoint_payload(tiny, config), tmp_path / "best.pt")
    assert main(["eval", "--checkpoint", str(tmp_path / "best.pt")]) == 2
    assert "not the code this run was trained with" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "pwned").exists()
