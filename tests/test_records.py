"""The typed records: what the trainer writes is what `records.RunSummary` declares."""

from __future__ import annotations

import json
import typing

from mnistlab.config import TrainConfig
from mnistlab.engine.trainer import train_run
from mnistlab.records import DONE_STATES, RunStatus, RunSummary
from quick_config import QUICK_BASE


def test_the_trainers_summary_has_exactly_the_declared_keys(small_splits, tmp_path):
    base = {k: v for k, v in QUICK_BASE.items() if k not in ("train_subset", "val_size")}
    config = TrainConfig.from_dict(base)
    result = train_run(config, small_splits, tmp_path / "run", progress=False, log=None)
    declared = typing.get_type_hints(RunSummary)
    user_model_only = {"model_sha256", "model_source"}
    assert set(result.summary) == set(declared) - user_model_only
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["state"] == "finished" == RunStatus.FINISHED  # plain strings on disk
    assert RunStatus(written["state"]) in DONE_STATES
