"""SIGKILL a grid at random moments, several writers on one SQLite store, torn writes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mnistlab.experiments.store import RunStore
from quick_config import quick_base

SUITE = (
    'name = "crash"\n[base]\n'
    + quick_base(epochs=2, train_subset=200, val_size=300)
    + """[[groups]]
name = "g"
axes = { lr = [0.01, 0.02, 0.05], batch_size = [32, 64] }
"""
)
# short heartbeats so a killed run is re-queued within seconds (every process must agree)
FAST_STALE = {"MNISTLAB_HEARTBEAT_SECONDS": "1", "MNISTLAB_GRACE_SECONDS": "3"}


def grid_command(tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mnistlab.cli",
        "grid",
        str(tmp_path / "suite.toml"),
        "--store",
        f"sqlite:///{tmp_path}/store.db",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        *extra,
    ]


def finished_runs(tmp_path: Path, suite: str = "crash") -> list:
    store = RunStore(f"sqlite:///{tmp_path}/store.db", heartbeat=False)
    try:
        study = store.study(suite, create=False)
    except Exception:
        return []
    return [r for r in store.records(study) if r.state == "finished"]


def kill_and_resume(tmp_path: Path, workers: int, kills: int, rng: random.Random) -> dict:
    (tmp_path / "suite.toml").write_text(SUITE)
    env = {**os.environ, **FAST_STALE}
    command = grid_command(tmp_path, "--workers", str(workers))
    snapshots: dict = {}
    for _ in range(kills):
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # random moment: start-up, claiming, mid-epoch, checkpoint or store writes
        time.sleep(rng.uniform(0.5, 12.0))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for run in finished_runs(tmp_path):
            snapshots.setdefault((run.name, run.seed, run.number), run.summary)
        # > grace + 1 s: SQLite's clock (CURRENT_TIMESTAMP) has whole seconds, so the stale check
        # can see up to a second less than really passed
        time.sleep(4.5)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return snapshots


def check_exactly_once(tmp_path: Path, snapshots: dict) -> tuple[bool, str]:
    runs = finished_runs(tmp_path)
    counts = Counter((r.name, r.seed) for r in runs)
    duplicates = [k for k, v in counts.items() if v > 1]
    if len(counts) != 6 or duplicates:
        return False, f"{len(counts)} of 6 configs finished, duplicates {duplicates}"
    by_trial = {(r.name, r.seed, r.number): r.summary for r in runs}
    changed = [k for k, summary in snapshots.items() if by_trial.get(k) != summary]
    if changed:
        return False, f"finished runs changed or lost: {changed}"
    for run in runs:
        # every finished run's checkpoint is whole and loads safely
        import torch

        checkpoint = torch.load(Path(run.run_dir) / "best.pt", weights_only=True)
        if checkpoint["epoch"] != run.summary["best_epoch"]:
            return False, f"{run.run_dir}: best.pt does not match summary"
    return True, "nothing"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_grid_twice_then_resume(tmp_path, workers, reliability):
    snapshots = kill_and_resume(tmp_path, workers, kills=2, rng=random.Random(workers))
    ok, lost = check_exactly_once(tmp_path, snapshots)
    reliability(f"SIGKILL grid, {workers} worker(s), 2 kills", 1, int(ok), lost)
    assert ok, lost


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_grid_ten_times_then_resume(tmp_path, workers, reliability):
    snapshots = kill_and_resume(tmp_path, workers, kills=10, rng=random.Random(10 + workers))
    ok, lost = check_exactly_once(tmp_path, snapshots)
    reliability(f"SIGKILL grid, {workers} worker(s), 10 kills", 1, int(ok), lost)
    assert ok, lost


def test_four_grid_processes_on_one_sqlite_store(tmp_path, reliability):
    (tmp_path / "suite.toml").write_text(SUITE.replace("epochs = 2", "epochs = 1"))
    processes = [
        subprocess.Popen(
            grid_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    codes = [p.returncode for p in processes]
    runs = finished_runs(tmp_path)
    counts = Counter((r.name, r.seed) for r in runs)
    locked = sum("locked" in out.lower() for out in outputs)
    ok = codes == [0, 0, 0, 0] and len(counts) == 6 and max(counts.values()) == 1 and not locked
    reliability(
        "4 grid processes, one SQLite store",
        1,
        int(ok),
        "nothing" if ok else f"codes {codes}, counts {dict(counts)}, locked {locked}",
    )
    assert ok, "\n".join(outputs)


WRITER = """
import sys
from mnistlab.fsutil import atomic_write_bytes
path, size = sys.argv[1], int(sys.argv[2])
i = 0
while True:
    i += 1
    atomic_write_bytes(path, bytes([i % 251]) * size)
"""


def test_sigkill_during_atomic_writes_never_tears_a_file(tmp_path, reliability):
    target = tmp_path / "best.pt"
    size = 4_000_000  # large enough that a kill often lands mid-write
    rng = random.Random(0)
    trials, survived = 10, 0
    for _ in range(trials):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(size)])
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # first complete version written: now kill at a random moment
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        data = target.read_bytes()
        survived += len(data) == size and len(set(data)) == 1
    reliability(
        "SIGKILL during checkpoint write (atomic write)",
        trials,
        survived,
        "nothing" if survived == trials else "a torn file was visible",
    )
    assert survived == trials
