"""Experiment tracking: mirror runs into MLflow (`--track mlflow`) for its UI and registry.

The store stays the record mnistlab reads; MLflow gets a copy. One MLflow run per mnistlab run
(params = the flattened config, per-epoch metrics with step = epoch, the summary as `summary.*`
metrics and tags, the run directory's files and best checkpoint as artifacts), nested under one
parent run per grid or study (found again by tag when another process or a later call joins).

The client API (MlflowClient) is used rather than `mlflow.start_run`: a grid coordinator has
several runs open at once (one per local worker), which the fluent API's single active-run
stack cannot express.

Where: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` in the working directory with
artifacts in `./mlartifacts` (`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows them).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mnistlab.errors import MnistlabError, first_line
from mnistlab.records import RunStatus

if TYPE_CHECKING:
    from mnistlab.config import TrainConfig
    from mnistlab.data import Splits
    from mnistlab.engine.trainer import RunResult

TRACKERS = ("mlflow",)
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
EXPERIMENT = "mnistlab"
INSTALL_HINT = "pip install 'mnistlab[mlflow]'"
# run-directory files copied as artifacts (last.pt is left out: best.pt is what was selected)
ARTIFACTS = ("config.toml", "epochs.csv", "summary.json", "best.pt")


class TrackingError(MnistlabError):
    """The tracking backend is missing or cannot be used."""


class Tracker(Protocol):
    """What the grid runner, `tune` and `train` call; `key` identifies one run while it is open."""

    def start(
        self,
        key: Hashable,
        name: str,
        config: dict[str, Any],
        tags: dict[str, Any] | None = None,
        run_dir: str | Path | None = None,
    ) -> None: ...

    def epoch(self, key: Hashable, row: dict[str, Any]) -> None: ...

    def finish(self, key: Hashable, summary: dict[str, Any]) -> None: ...

    def fail(self, key: Hashable, reason: str) -> None: ...

    def close(self) -> None: ...


def open_tracker(kind: str | None, *, parent: str | None = None) -> Tracker | None:
    """The tracker for `--track KIND` (None when not asked); `parent` names the grid/study run."""
    if kind is None:
        return None
    if kind != "mlflow":
        raise TrackingError(f"unknown tracker {kind!r}; valid choices: {', '.join(TRACKERS)}")
    return MlflowTracker(parent=parent)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model_options": {"width": 1.0}}` -> `{"model_options.width": "1.0"}` (MLflow params
    are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = str(value)
    return flat


class MlflowTracker:
    """Runs in MLflow, through MlflowClient; nested under a parent run when `parent` is set."""

    def __init__(self, *, parent: str | None = None, tracking_uri: str | None = None):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TrackingError(
                f"--track mlflow needs the mlflow package: {INSTALL_HINT}"
            ) from None
        # table creation and migrations log at INFO on first use; they are not the user's news
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            self.experiment_id = self._experiment()
            self.parent_id = self._parent(parent) if parent else None
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(f"cannot use MLflow at {self.uri}: {first_line(error)}") from None
        self.runs: dict[Hashable, tuple[str, Path | None]] = {}  # key -> (run id, run dir)

    def _experiment(self) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:") or "://" not in self.uri:
            # a local backend keeps its artifacts beside it, not in a server's default place
            location = Path(DEFAULT_ARTIFACT_DIR).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:
            found = self.client.get_experiment_by_name(name)  # created by another process
            if found is None:
                raise
            return found.experiment_id

    def _parent(self, name: str) -> str:
        """The parent run of this grid/study: reused when another process already made it."""
        escaped = name.replace("'", "\\'")
        existing = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mnistlab.parent` = '{escaped}'",
            max_results=1,
        )
        if existing:
            return existing[0].info.run_id
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"mnistlab.parent": name}
        )
        return run.info.run_id

    # -- one run --
    def start(
        self,
        key: Hashable,
        name: str,
        config: dict[str, Any],
        tags: dict[str, Any] | None = None,
        run_dir: str | Path | None = None,
    ) -> None:
        from mlflow.entities import Param

        run_tags = {f"mnistlab.{k}": str(v) for k, v in (tags or {}).items()}
        if run_dir is not None:
            run_tags["mnistlab.run_dir"] = str(run_dir)
        if self.parent_id is not None:
            run_tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=run_tags)
        self.runs[key] = (run.info.run_id, Path(run_dir) if run_dir is not None else None)
        params = [Param(k, v) for k, v in flatten(config).items()]
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(run.info.run_id, params=params[start : start + 100])

    def epoch(self, key: Hashable, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        if key not in self.runs:
            return
        run_id = self.runs[key][0]
        now = int(time.time() * 1000)
        step = int(row["epoch"])
        metrics = [
            Metric(name, float(value), now, step)
            for name, value in row.items()
            if name != "epoch" and isinstance(value, int | float) and math.isfinite(value)
        ]
        self.client.log_batch(run_id, metrics=metrics)

    def finish(self, key: Hashable, summary: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        if key not in self.runs:
            return
        run_id, run_dir = self.runs.pop(key)
        now = int(time.time() * 1000)
        # prefixed so the best val_acc does not become one more point of the per-epoch history
        metrics = [
            Metric(f"summary.{name}", float(value), now, 0)
            for name, value in summary.items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ]
        tags = [
            RunTag(f"summary.{name}", str(value))
            for name, value in summary.items()
            if isinstance(value, str)
        ]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if run_dir is not None:
            for file_name in ARTIFACTS:
                path = run_dir / file_name
                if path.is_file():
                    self.client.log_artifact(run_id, str(path))
        state = summary.get("state", RunStatus.FINISHED)
        status = {RunStatus.FINISHED: "FINISHED", RunStatus.PRUNED: "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(run_id, status=status)

    def fail(self, key: Hashable, reason: str) -> None:
        if key not in self.runs:
            return
        run_id = self.runs.pop(key)[0]
        self.client.set_tag(run_id, "mnistlab.error", reason[:5000])
        self.client.set_terminated(run_id, status="FAILED")

    def close(self) -> None:
        """Mark runs still open (an interrupted grid) as killed and the parent as finished (a
        process that joins later still nests its runs under it)."""
        for run_id, _ in self.runs.values():
            self.client.set_terminated(run_id, status="KILLED")
        self.runs.clear()
        if self.parent_id is not None:
            self.client.set_terminated(self.parent_id, status="FINISHED")


def train_tracked(
    kind: str | None,
    config: TrainConfig,
    splits: Splits,
    out_dir: Path,
    **kwargs: Any,
) -> RunResult:
    """`train_run`, mirrored into the tracker `kind` when one is asked (`mnistlab train`)."""
    from mnistlab.engine.trainer import train_run

    tracker = open_tracker(kind)
    if tracker is None:
        return train_run(config, splits, out_dir, **kwargs)
    try:
        tracker.start("train", config.name, config.to_dict(), run_dir=out_dir)
        result = train_run(
            config,
            splits,
            out_dir,
            on_epoch=lambda record: tracker.epoch("train", record.as_row()),
            **kwargs,
        )
        tracker.finish("train", result.summary)
        return result
    finally:
        tracker.close()  # an interrupted run is marked killed
