"""The typed records that cross modules: a run's state and its summary.

The trainer writes a summary (`RunSummary`) to summary.json and, through a grid or tune, into
the store; results, reports, compare, tracking and the CLI read it back. Its keys and a run's
states are named here once. `RunStatus` is a `str` enum, so stored JSON and existing stores
keep the plain strings ("finished", ...).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict


class RunStatus(StrEnum):
    """Where a run is. The trainer ends a run FINISHED, DIVERGED or PRUNED; a store also has
    WAITING (queued), RUNNING (claimed) and FAILED (an error, or a holder that died)."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    FAILED = "failed"


#: A cell is done when its run finished or diverged: neither is trained again.
DONE_STATES = frozenset({RunStatus.FINISHED, RunStatus.DIVERGED})


class RunSummary(TypedDict, total=False):
    """What `engine.trainer` records about a finished run (summary.json, the store)."""

    name: str
    model: str
    params: int
    state: str  # a RunStatus value
    epochs: int  # configured
    epochs_run: int
    best_epoch: int
    selected: str  # the weights chosen on val: "epoch" (the best epoch's) or "swa"
    val_acc: float | None
    val_loss: float | None
    val_acc_tta: float | None
    test_acc: float | None  # measured once, on the weights chosen on val
    test_loss: float | None
    diverged_epoch: int | None
    seconds: float
    seconds_per_epoch: float
    train_size: int
    val_size: int
    test_size: int
    seed: int
    device: str
    threads: int
    torch: str
    mnistlab: str
    config_hash: str
    model_sha256: str | None  # a user's model only
    model_source: str  # a user's model only
