"""SIGKILL a grid or a search at random moments and restart it at once; Ctrl-C during a grid;
a worker killed under a live coordinator; the attempt cap; runs held by another machine;
several processes on one SQLite store; torn writes.

The kill tests run with a heartbeat grace far longer than the test: a killed run can only come
back in time if the restart sees that its holder (pid and start time on this machine) is dead.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import FrozenTrial, TrialState

from mnistlab.cli import main
from mnistlab.experiments.heartbeat import Timing
from mnistlab.experiments.owner import Owner, this_process
from mnistlab.experiments.runner import enqueue_suite
from mnistlab.experiments.storage import StoreError
from mnistlab.experiments.store import RunStore
from mnistlab.experiments.suites import load_suite
from quick_config import quick_base

SUITE = (
    'name = "crash"\n[base]\n'
    + quick_base(epochs=2, train_subset=200, val_size=300)
    + """[[groups]]
name = "g"
axes = { lr = [0.01, 0.02, 0.05], batch_size = [32, 64] }
"""
)
# the default suite's variant: 4 one-epoch runs
QUICK_SUITE = (
    'name = "crash"\n[base]\n'
    + quick_base(width=0.5, train_subset=200, val_size=300)
    + """[[groups]]
name = "g"
axes = { lr = [0.02, 0.05], batch_size = [32, 64] }
"""
)
SPACE = (
    'name = "search"\n[base]\n'
    + quick_base(width=0.5, epochs=2, train_subset=200, val_size=300, lr=None)
    + """[params]
lr = { low = 0.01, high = 0.1, log = true }
"""
)
# a killed run must come back through its dead holder, never by waiting out its heartbeat
# (the timing is kept in the store: the grid and tune processes started here read it there)
NO_STALE = Timing(heartbeat_seconds=5, grace_seconds=900)
# seconds the last restart may take: minutes under the grace, so waiting it out fails the test
RESTART_LIMIT = 600
# the command line, however the cli module is laid out
CLI = [sys.executable, "-c", "import sys; from mnistlab.cli import main; sys.exit(main())"]


def grid_command(tmp_path: Path, *extra: str) -> list[str]:
    return [
        *CLI,
        "grid",
        str(tmp_path / "suite.toml"),
        "--store",
        store_url(tmp_path),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        *extra,
    ]


def tune_command(tmp_path: Path, trials: int) -> list[str]:
    return [
        *CLI,
        "tune",
        "--space",
        str(tmp_path / "space.toml"),
        "--trials",
        str(trials),
        "--pruner",
        "none",
        "--store",
        store_url(tmp_path),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


def read_trials(store: RunStore, study: str) -> list[FrozenTrial]:
    """The study's trials ([] before it exists), read while other processes write."""
    for _ in range(50):
        try:
            return store.study(study, create=False).get_trials(deepcopy=False)
        except StoreError:
            return []
        except Exception as error:  # SQLite busy while a writer commits: read again
            if "locked" not in str(error).lower():
                raise
            time.sleep(0.2)
    raise AssertionError("store stayed locked")


def holder_pid(trial: FrozenTrial) -> int | None:
    owner = Owner.from_attr(trial.user_attrs.get("owner"))
    return owner.pid if owner else None


def wait_for_claim(store: RunStore, study: str, process: subprocess.Popen, limit: float) -> bool:
    """True once `process` holds a run; False if it exits first or `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        trials = read_trials(store, study)
        if any(t.state == TrialState.RUNNING and holder_pid(t) == process.pid for t in trials):
            return True
        time.sleep(0.1)
    return False


@dataclass
class Kills:
    landed_mid_run: int = 0  # kills that left runs RUNNING under the killed process
    snapshots: dict[int, Any] = field(default_factory=dict)  # trial -> summary when done
    restart: subprocess.CompletedProcess | None = None


def _done(trial: FrozenTrial) -> bool:
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and trial.user_attrs.get("state") == "diverged"
    )


def kill_and_restart_at_once(
    command: list[str], store: RunStore, study: str, kills: int, rng: random.Random
) -> Kills:
    """Start `command`, SIGKILL its whole process group at a random moment, `kills` times in a
    row, each restart immediately after the kill; then run it to the end."""
    store.set_timing(store.study(study), NO_STALE)
    env = dict(os.environ)
    log = Kills()
    for index in range(kills):
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if index % 2 == 1:
            # anywhere: start-up, claiming, training, checkpoint or store writes (the first kill
            # is the in-run kind: on a quiet machine a small study may be over within seconds)
            time.sleep(rng.uniform(0.5, 10.0))
        else:
            # inside a run: right after this process claimed one (a quick run on a quiet
            # machine is over in about a second, so a later kill can miss it)
            wait_for_claim(store, study, process, limit=90)
            time.sleep(rng.uniform(0.0, 0.3))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the coordinator and its workers
        process.wait()
        trials = read_trials(store, study)
        log.landed_mid_run += any(
            t.state == TrialState.RUNNING and holder_pid(t) == process.pid for t in trials
        )
        for trial in trials:
            if _done(trial):
                log.snapshots.setdefault(trial.number, trial.user_attrs.get("summary"))
    try:
        log.restart = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=RESTART_LIMIT
        )
    except subprocess.TimeoutExpired as expired:
        # still waiting: for a killed run's heartbeat, when its dead holder should be seen
        log.restart = subprocess.CompletedProcess(command, -1, str(expired.stdout), "timed out")
    return log


def check_end_state(store: RunStore, study: str, kills: Kills) -> list[str]:
    """What is wrong after the last restart (empty: nothing). Shared by grid and tune."""
    problems = []
    restart = kills.restart
    assert restart is not None
    if restart.returncode != 0:
        output = (restart.stdout + restart.stderr)[-2000:]
        problems.append(f"last restart exited {restart.returncode}: {output}")
    if kills.landed_mid_run == 0:
        problems.append("no kill landed while a run was claimed")
    trials = {t.number: t for t in read_trials(store, study)}
    left = [n for n, t in trials.items() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if left:
        problems.append(f"left running or queued: trials {left}")
    changed = [
        n
        for n, summary in kills.snapshots.items()
        if not _done(trials[n]) or trials[n].user_attrs.get("summary") != summary
    ]
    if changed:
        problems.append(f"runs done before a kill changed afterwards: trials {changed}")
    return problems


def check_grid(store: RunStore, kills: Kills, cells: int) -> list[str]:
    problems = check_end_state(store, "crash", kills)
    done = [t for t in read_trials(store, "crash") if _done(t)]
    per_cell = Counter(t.user_attrs["cell_id"] for t in done)
    if len(per_cell) != cells or max(per_cell.values(), default=0) != 1:
        problems.append(
            f"{len(per_cell)} of {cells} cells done, counts {sorted(per_cell.values())}"
        )
    import torch

    for trial in done:
        # every finished run's checkpoint is whole, loads safely and matches the stored result
        checkpoint = torch.load(Path(trial.user_attrs["run_dir"]) / "best.pt", weights_only=True)
        if checkpoint["epoch"] != trial.user_attrs["summary"]["best_epoch"]:
            problems.append(f"trial {trial.number}: best.pt does not match its summary")
    return problems


def check_tune(store: RunStore, kills: Kills, total: int) -> list[str]:
    problems = check_end_state(store, "search", kills)
    trials = {t.number: t for t in read_trials(store, "search")}
    done = [t for t in trials.values() if _done(t)]
    if len(done) != total:
        problems.append(f"{len(done)} trials done, the study's total is {total}")
    errors = [t.number for t in trials.values() if t.user_attrs.get("state") == "error"]
    if errors:
        problems.append(f"trials failed with an error: {errors}")

    def origin(trial: FrozenTrial) -> int:
        while "retry_of" in trial.user_attrs:
            trial = trials[trial.user_attrs["retry_of"]]
        return trial.number

    per_point = Counter(origin(t) for t in done)
    if per_point and max(per_point.values()) != 1:
        problems.append(f"a point was trained to the end twice: {per_point}")
    return problems


def _grid_kills(tmp_path, reliability, workers: int, kills: int, suite: str, seed: int) -> None:
    (tmp_path / "suite.toml").write_text(suite)
    cells = len(load_suite(tmp_path / "suite.toml").cells)
    store = RunStore(store_url(tmp_path), heartbeat=False)
    command = grid_command(tmp_path, "--workers", str(workers))
    log = kill_and_restart_at_once(command, store, "crash", kills, random.Random(seed))
    problems = check_grid(store, log, cells)
    lost = "; ".join(problems) or "nothing"
    reliability(
        f"SIGKILL grid, {workers} worker(s), {kills} kills ({log.landed_mid_run} mid-run), "
        "immediate restarts",
        1,
        int(not problems),
        lost,
    )
    assert not problems, lost
    assert f"{cells} of {cells} runs done" in log.restart.stdout


@pytest.mark.long
def test_sigkill_grid_three_times_restarting_at_once(tmp_path, reliability):
    _grid_kills(tmp_path, reliability, workers=2, kills=3, suite=QUICK_SUITE, seed=3)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_grid_ten_times_restarting_at_once(tmp_path, workers, reliability):
    _grid_kills(tmp_path, reliability, workers=workers, kills=10, suite=SUITE, seed=10 + workers)


def _tune_kills(tmp_path, reliability, kills: int, total: int, seed: int, epochs: int = 2) -> None:
    (tmp_path / "space.toml").write_text(SPACE.replace("epochs = 2", f"epochs = {epochs}"))
    store = RunStore(store_url(tmp_path), heartbeat=False)
    command = tune_command(tmp_path, total)
    log = kill_and_restart_at_once(command, store, "search", kills, random.Random(seed))
    problems = check_tune(store, log, total)
    lost = "; ".join(problems) or "nothing"
    reliability(
        f"SIGKILL tune, {kills} kills ({log.landed_mid_run} mid-trial), immediate restarts",
        1,
        int(not problems),
        lost,
    )
    assert not problems, lost


@pytest.mark.long
def test_sigkill_tune_twice_restarting_at_once(tmp_path, reliability):
    _tune_kills(tmp_path, reliability, kills=2, total=3, seed=2, epochs=1)


@pytest.mark.slow
def test_sigkill_tune_ten_times_restarting_at_once(tmp_path, reliability):
    _tune_kills(tmp_path, reliability, kills=10, total=6, seed=20)


def _default_sigint() -> None:
    # a pytest started in the background (`cmd &`) passes SIGINT on as ignored: restore it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.long
def test_ctrl_c_during_a_grid_gives_its_runs_back(tmp_path, reliability):
    (tmp_path / "suite.toml").write_text(QUICK_SUITE)
    store = RunStore(store_url(tmp_path), heartbeat=False)
    store.set_timing(store.study("crash"), NO_STALE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        grid_command(tmp_path, "--workers", "2"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    assert wait_for_claim(store, "crash", process, limit=120), "the grid never claimed a run"
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    out, _ = process.communicate(timeout=120)
    trials = read_trials(store, "crash")
    interrupted = [t for t in trials if t.user_attrs.get("state") == "interrupted"]
    requeued = {t.user_attrs.get("retry_of") for t in trials if t.state == TrialState.WAITING}
    ok = (
        process.returncode == 130
        and "unfinished run(s) queued again" in out
        and not [t for t in trials if t.state == TrialState.RUNNING]
        and interrupted
        and {t.number for t in interrupted} <= requeued
    )
    # and the next call finishes the grid, each cell once
    again = subprocess.run(
        grid_command(tmp_path, "--workers", "2"), env=env, capture_output=True, text=True
    )
    done = Counter(t.user_attrs["cell_id"] for t in read_trials(store, "crash") if _done(t))
    ok = ok and again.returncode == 0 and len(done) == 4 and max(done.values()) == 1
    reliability("Ctrl-C during a grid (2 workers), then restart", 1, int(bool(ok)))
    assert process.returncode == 130, out
    assert "unfinished run(s) queued again" in out, out
    assert interrupted and {t.number for t in interrupted} <= requeued, out
    assert again.returncode == 0 and len(done) == 4 and max(done.values()) == 1, again.stdout


def _spawned_workers(parent: int) -> list[int]:
    """Pids of the multiprocessing workers `parent` started (not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.long
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
def test_a_worker_killed_under_a_live_coordinator_is_replaced_and_its_run_redone(
    tmp_path, reliability
):
    (tmp_path / "suite.toml").write_text(QUICK_SUITE)
    store = RunStore(store_url(tmp_path), heartbeat=False)
    store.set_timing(store.study("crash"), NO_STALE)
    process = subprocess.Popen(
        grid_command(tmp_path, "--workers", "1"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert wait_for_claim(store, "crash", process, limit=120), "the grid never claimed a run"
        workers = _spawned_workers(process.pid)
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)
        out, _ = process.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    trials = read_trials(store, "crash")
    died = [t for t in trials if t.user_attrs.get("state") == "worker-died"]
    done = Counter(t.user_attrs["cell_id"] for t in trials if _done(t))
    ok = process.returncode == 0 and len(died) == 1 and len(done) == 4 and set(done.values()) == {1}
    reliability("a worker killed while its coordinator lives", 1, int(ok))
    assert process.returncode == 0, out
    assert "worker 0 died; run queued again" in out and "1 retried after a worker died" in out
    assert "4 of 4 runs done" in out
    assert len(died) == 1 and len(done) == 4 and set(done.values()) == {1}, out
    # the died run's cell was finished by its re-queued copy, attempt 2
    retry = [t for t in trials if t.user_attrs.get("retry_of") == died[0].number]
    assert len(retry) == 1 and retry[0].user_attrs["attempt"] == 2 and _done(retry[0])


@pytest.mark.long
def test_a_run_is_retried_at_most_three_times_then_reported_failed(tmp_path, capsys):
    (tmp_path / "suite.toml").write_text(QUICK_SUITE.replace("[0.02, 0.05]", "[0.05]"))
    suite = load_suite(tmp_path / "suite.toml")
    store = RunStore(store_url(tmp_path))
    assert enqueue_suite(store, suite, 1) == 2
    study = store.study("crash", create=False)
    first = store.claim(study)
    cell = first.user_attrs["cell_id"]
    for attempt in (1, 2, 3):
        # claimed, then its worker died: queued again while attempts remain
        trial = first if attempt == 1 else store.claim(study, lambda a: a["cell_id"] == cell)
        assert trial is not None and trial.user_attrs["cell_id"] == cell
        assert trial.user_attrs.get("attempt", 1) == attempt
        store.release(study, trial._trial_id, "worker-died")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.FAIL) == 3 and states.count(TrialState.WAITING) == 1
    # `worker` trains the other cell, then reports the capped one and exits 1
    argv = ["--store", store_url(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    code = main(["worker", "--suite", "crash", *argv])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "1 of 2 runs done" in out and "failed, not queued" in out and "worker-died" in out
    # `grid` queues it afresh (attempt 1) and finishes it
    assert main(["grid", str(tmp_path / "suite.toml"), *argv]) == 0
    assert "2 of 2 runs done" in capsys.readouterr().out


def test_a_dead_holder_on_this_machine_is_taken_back_at_once(tmp_path):
    (tmp_path / "suite.toml").write_text(QUICK_SUITE)
    store = RunStore(store_url(tmp_path))
    enqueue_suite(store, load_suite(tmp_path / "suite.toml"), 1)
    study = store.study("crash", create=False)
    store.set_timing(study, NO_STALE)  # never by heartbeat here
    me = this_process()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    holders = {
        "alive (this process)": me,
        "pid gone": Owner(me.host, me.space, int(gone), 12345),
        "pid reused (another start time)": Owner(me.host, me.space, me.pid, (me.start or 0) + 1),
        "another machine": Owner("elsewhere", "other-boot/other-ns", 1, 1),
    }
    trials = [store.claim(study) for _ in holders]  # first: a claim takes back dead holders'
    claimed = {}
    for (name, owner), trial in zip(holders.items(), trials, strict=True):
        store.set_attr(trial._trial_id, "owner", owner.to_attr())
        claimed[name] = trial.number
    taken = {t.number: t.user_attrs["state"] for t in store.take_back(study)}
    assert taken == {
        claimed["pid gone"]: "holder-died",
        claimed["pid reused (another start time)"]: "holder-died",
    }
    # their copies are queued: the next claim gets one at once
    again = store.claim(study)
    assert again is not None and again.user_attrs["retry_of"] in taken


@pytest.mark.long
def test_a_run_held_by_another_machine_is_waited_for_then_taken_back_when_stale(tmp_path, capsys):
    (tmp_path / "suite.toml").write_text(QUICK_SUITE.replace("[0.02, 0.05]", "[0.05]"))
    store = RunStore(store_url(tmp_path))
    enqueue_suite(store, load_suite(tmp_path / "suite.toml"), 1)
    study = store.study("crash", create=False)
    held = store.claim(study)
    other = Owner("otherhost", "other-boot/other-ns", 4242, 1)
    store.set_attr(held._trial_id, "owner", other.to_attr())
    argv = [str(tmp_path / "suite.toml"), "--store", store_url(tmp_path)]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    # --no-wait: the free cell is trained, the held one named, exit 3
    store.set_timing(study, NO_STALE)
    assert main(["grid", *argv, "--no-wait"]) == 3
    out = capsys.readouterr().out
    assert "1 of 2 runs done" in out and "still running elsewhere (--no-wait)" in out
    assert f"(trial {held.number}): otherhost pid 4242, heartbeat" in out
    # results name the holder and the heartbeat's age
    assert main(["results", "--store", store_url(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"(trial {held.number}): otherhost pid 4242, heartbeat" in out
    assert "ago (stale after 900s)" in out
    # waiting: one line says what and for how long, then the silent run is taken back
    store.set_timing(study, Timing(heartbeat_seconds=1, grace_seconds=3))
    store.heartbeat(held._trial_id)
    assert main(["grid", *argv]) == 0
    out = capsys.readouterr().out
    assert "waiting for 1 run(s) held by other processes:" in out
    assert "otherhost pid 4242, heartbeat" in out and "taken back if none for" in out
    assert "2 of 2 runs done" in out
    trial = store.study("crash", create=False).trials[held.number]
    assert trial.state == TrialState.FAIL and trial.user_attrs["state"] == "stale"


@pytest.mark.long
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
    store = RunStore(store_url(tmp_path), heartbeat=False)
    done = [t for t in read_trials(store, "crash") if t.state == TrialState.COMPLETE]
    counts = Counter(t.user_attrs["cell_id"] for t in done)
    locked = sum("locked" in out.lower() for out in outputs)
    # each process waits for the others: every one of them reports the whole grid done
    whole = sum("6 of 6 runs done" in out for out in outputs)
    ok = (
        codes == [0, 0, 0, 0]
        and len(counts) == 6
        and max(counts.values()) == 1
        and not locked
        and whole == 4
    )
    reliability(
        "4 grid processes, one SQLite store",
        1,
        int(ok),
        "nothing" if ok else f"codes {codes}, counts {dict(counts)}, locked {locked}",
    )
    assert ok, "\n".join(outputs)


@pytest.mark.long
def test_three_tune_processes_on_one_sqlite_store_stop_at_exactly_the_total(tmp_path, reliability):
    (tmp_path / "space.toml").write_text(SPACE.replace("epochs = 2", "epochs = 1"))
    command = tune_command(tmp_path, 4)
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    trials = read_trials(RunStore(store_url(tmp_path), heartbeat=False), "search")
    ok = [p.returncode for p in processes] == [0, 0, 0] and len(trials) == 4
    reliability("3 tune processes, one SQLite store, --trials 4", 1, int(ok))
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(outputs)
    assert len(trials) == 4, "\n".join(outputs)  # a slot is claimed before training: never 5
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(out.count(": finished, val_acc") for out in outputs) == 4


WRITER = """
import sys
from mnistlab.fsutil import atomic_write_bytes
path, size = sys.argv[1], int(sys.argv[2])
i = 0
while True:
    i += 1
    atomic_write_bytes(path, bytes([i % 251]) * size)
"""


@pytest.mark.long
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


def test_liveness_of_holders():
    from mnistlab.experiments.owner import Liveness, liveness

    me = this_process()
    assert liveness(me, me) is Liveness.ALIVE
    assert liveness(Owner(me.host, me.space, me.pid, (me.start or 0) + 1), me) in (
        Liveness.DEAD,
        Liveness.ALIVE,  # without /proc there is no start time to tell a reused pid
    )
    assert liveness(Owner("elsewhere", me.space, me.pid, me.start), me) is Liveness.ELSEWHERE
    assert liveness(Owner(me.host, "other", me.pid, me.start), me) is Liveness.ELSEWHERE
    assert Owner.from_attr(me.to_attr()) == me and Owner.from_attr({"pid": "x"}) is None
