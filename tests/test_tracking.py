"""MLflow tracking against the real mlflow package: what MLflow holds equals the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.experiments.store import RunStore
from mnistlab.experiments.tracking import INSTALL_HINT, flatten
from quick_config import quick_base

# half-width tiny (4,130 params) keeps each run's one-off 10k test evaluation cheap
SUITE = (
    'name = "quick"\n[base]\n'
    + quick_base(width=0.5, epochs=2)
    + """[[groups]]
name = "g"
variants = [ { name = "sgd" }, { name = "adam", optimizer = "adam", lr = 0.003 } ]
"""
)

SPACE = (
    'name = "search"\n[base]\n'
    + quick_base(width=0.5, batch_size=None, lr=None)
    + """[params]
lr = { low = 0.01, high = 0.1, log = true }
"""
)


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_grid_train_and_tune_are_mirrored_into_mlflow(tmp_path, monkeypatch, capsys, mnist_dir):
    pytest.importorskip("mlflow", reason=f"mlflow is not installed ({INSTALL_HINT})")
    from mlflow.tracking import MlflowClient

    # the default backend (sqlite:///mlflow.db) and artifact dir, inside the test's directory
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    (tmp_path / "quick.toml").write_text(SUITE)
    (tmp_path / "search.toml").write_text(SPACE)
    store_url = f"sqlite:///{tmp_path}/store.db"
    common = ["--store", store_url, "--data-dir", str(mnist_dir), "--track", "mlflow"]
    assert main(["grid", "quick.toml", "--no-progress", *common]) == 0
    assert main(["tune", "--space", "search.toml", "--trials", "1", *common]) == 0
    train = ["train", "--epochs", "1", "--train-subset", "300", "--val-size", "500"]
    train += ["--width", "0.5", "--device", "cpu", "--out", "solo", "--name", "solo"]
    assert main([*train, "--no-progress", "--data-dir", str(mnist_dir), "--track", "mlflow"]) == 0
    capsys.readouterr()

    client = MlflowClient(tracking_uri="sqlite:///mlflow.db")
    experiment = client.get_experiment_by_name("mnistlab")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    by_name = {run.info.run_name: run for run in runs}
    parent = by_name["grid quick"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    store = RunStore(store_url, heartbeat=False)
    records = {r.number: r for r in store.records(store.study("quick", create=False))}
    assert len(children) == len(records) == 2
    for child in children:
        record = records[int(child.data.tags["mnistlab.trial"])]
        run_id = child.info.run_id
        assert child.info.status == "FINISHED"
        # per-epoch metrics, step = epoch, exactly the store's values
        for key in ("val_acc", "val_loss", "train_loss", "train_acc", "lr"):
            assert history(client, run_id, key) == [(e["epoch"], e[key]) for e in record.epochs]
        assert child.data.metrics["summary.val_acc"] == record.summary["val_acc"]
        assert child.data.metrics["summary.test_acc"] == record.summary["test_acc"]
        assert child.data.params == flatten(record.config)
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert {"best.pt", "summary.json", "epochs.csv", "config.toml"} <= artifacts
        local = client.download_artifacts(run_id, "summary.json", str(tmp_path))
        assert json.loads(Path(local).read_text())["val_acc"] == record.summary["val_acc"]

    # a study is a parent run too; its trial is nested under it
    study_parent = by_name["tune search"]
    trial_run = by_name["search-t0"]
    assert trial_run.data.tags["mlflow.parentRunId"] == study_parent.info.run_id
    trial = store.study("search", create=False).trials[0]
    epochs = trial.user_attrs["epochs"]
    assert history(client, trial_run.info.run_id, "val_acc") == [
        (e["epoch"], e["val_acc"]) for e in epochs
    ]

    # `train` makes one top-level run with the run directory's files
    solo = by_name["solo"]
    assert "mlflow.parentRunId" not in solo.data.tags
    summary = json.loads((tmp_path / "solo" / "summary.json").read_text())
    assert solo.data.metrics["summary.val_acc"] == summary["val_acc"]
    assert history(client, solo.info.run_id, "val_acc")[-1][0] == 1


def test_track_mlflow_without_mlflow_names_the_install_command(tmp_path, monkeypatch, capsys):
    # an import of a module set to None in sys.modules fails, as if it were not installed
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    (tmp_path / "search.toml").write_text(SPACE)
    code = main(
        [
            "tune",
            "--space",
            str(tmp_path / "search.toml"),
            "--trials",
            "1",
            "--store",
            f"sqlite:///{tmp_path}/store.db",
            "--track",
            "mlflow",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'mnistlab[mlflow]'" in err
