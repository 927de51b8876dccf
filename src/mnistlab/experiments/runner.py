"""Run a suite's grid from the store: this process claims runs, worker processes train them.

Only the coordinating process talks to the store, so workers on one machine never race for a run
and the store sees one writer per machine. Workers are spawned processes sharing the cores
(`torch.set_num_threads(cores // workers)`, or `--threads`); each trains one claimed run at a
time and streams its epochs back. A worker that dies while this process lives: its run is queued
again at once and a fresh worker started. This whole process killed: its runs are RUNNING under
its pid, and the next `grid`/`worker` on this machine takes them back at once (another machine,
once their heartbeat is stale). Ctrl-C hands every claimed run back.

A grid call returns when every cell it was asked for is done (finished or diverged), or none
can be: it waits for runs other processes hold, and takes them back if those go silent.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.experiments.heartbeat import WaitLine
from mnistlab.experiments.results import config_key, config_rows
from mnistlab.experiments.store import Progress, RunStore
from mnistlab.experiments.suites import Suite
from mnistlab.records import RunStatus
from mnistlab.run.trust import TrustedModels, check_unchanged

if TYPE_CHECKING:
    from mnistlab.experiments.tracking import Tracker


class WorkerStartError(MnistlabError):
    """A worker process died before it could take a run: retrying would loop forever."""


@dataclass
class GridOutcome:
    suite: str
    queued: int = 0
    finished: int = 0  # by this process
    diverged: int = 0
    failed: int = 0  # run errors here (not re-queued: the next `grid` call retries them)
    retried: int = 0  # runs whose worker died here, queued again
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    # the asked cells when this process stopped: complete, or what is failed / still held
    progress: Progress = field(default_factory=Progress)
    # queued runs whose model code this process was not given (`run.trust`): left for others
    refused: list[str] = field(default_factory=list)


def run_dir_for(root: Path, suite: str, name: str, seed: int, number: int) -> Path:
    # the trial number makes a retried run's directory new: a dead worker's files stay as they are
    return root / suite / f"{name}-s{seed}-t{number}"


def enqueue_suite(store: RunStore, suite: Suite, seeds: int) -> int:
    study = store.study(suite.name)
    runs = suite.runs(seeds)
    # a user model file edited since the grid was queued must not mix into the same table
    check_unchanged(
        (t.user_attrs for t in study.get_trials(deepcopy=False)), [c.config for c in runs]
    )
    return store.enqueue(study, [(cell.name, cell.config) for cell in runs])


def top_configs(store: RunStore, suite: Suite, count: int) -> Suite:
    """The suite cut to its `count` best configs by their seed-0 val accuracy (validation only:
    the test set never chooses), e.g. to give only those more seeds."""
    current = suite.config_keys()
    records = [
        record
        for record in store.records(store.study(suite.name, create=False))
        if config_key(record.config) in current  # not runs of an older version of the suite
    ]
    # seed 0 only: every config has it after the first pass, and the seeds a `--top` pass adds
    # must not re-rank it (a resumed pass would otherwise pick a new set and queue its seeds too)
    rows = config_rows([record for record in records if record.seed == 0])
    # a ranking of part of the suite would pick the configs that happened to finish first
    missing = sorted({cell.name for cell in suite.cells} - {row["name"] for row in rows})
    if missing:
        raise ConfigError(
            f"--top: {len(missing)} of {len(suite.cells)} configs of {suite.name!r} have no "
            f"finished seed-0 run yet ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); "
            "run the grid without --top first"
        )
    # one entry per computation: a config listed under a second name (`same_as`) is not a
    # second config, and would take the place of one
    ranked = [row["name"] for row in rows if row["val_acc"].mean is not None and not row["same_as"]]
    best = set(ranked[:count])
    best |= {row["name"] for row in rows if row["same_as"] in best}
    cells = tuple(cell for cell in suite.cells if cell.name in best)
    return replace(suite, cells=cells)


def _worker_main(
    index: int,
    threads: int,
    data_dir: str | None,
    tasks: mp.Queue,
    events: mp.Queue,
) -> None:
    """Worker process: train each (trial_id, config, run_dir) task, report epochs and results."""
    import torch

    from mnistlab.data import load_mnist
    from mnistlab.engine.trainer import train_run
    from mnistlab.run.build import splits_for

    torch.set_num_threads(threads)
    data = load_mnist(Path(data_dir) if data_dir else None, download=False)
    events.put(("ready", index, -1, None))  # a worker that dies before this never started
    parent = os.getppid()
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return  # the coordinator died (kill -9): do not linger as an orphan
            continue
        if task is None:
            return
        trial_id, config_dict, run_dir = task
        try:
            config = TrainConfig.from_dict(config_dict)
            splits = splits_for(config, data)

            def on_epoch(record: Any, trial_id: int) -> None:
                if os.getppid() != parent:
                    raise SystemExit(0)  # the coordinator is gone: stop, the run will be retried
                events.put(("epoch", index, trial_id, record.as_row()))

            result = train_run(
                config,
                splits,
                Path(run_dir),
                progress=False,
                on_epoch=partial(on_epoch, trial_id=trial_id),
                log=None,
            )
            rows = [r.as_row() for r in result.epochs]
            events.put(("done", index, trial_id, (result.summary, rows)))
        except Exception as error:  # recorded, the grid goes on
            message = f"{type(error).__name__}: {error}"
            if isinstance(error, torch.OutOfMemoryError):
                message = "out of device memory: use a smaller batch_size"
            events.put(("error", index, trial_id, message))


def run_grid(
    store: RunStore,
    suite_name: str,
    *,
    workers: int = 1,
    threads: int | None = None,
    runs_root: Path = Path("runs"),
    data_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    tracker: Tracker | None = None,
    cells: Collection[str] | None = None,
    wait: bool = True,
    trusted: TrustedModels | None = None,
    device: str = "auto",
) -> GridOutcome:
    """Claim and train queued runs of `suite_name` until every cell of `cells` (cell ids;
    default: all in the study) is finished or diverged, or none left can be.

    With nothing left to claim, wait for the runs other processes hold (one line says which)
    and take them back when their holder dies or goes silent; `wait=False` returns instead
    (`outcome.progress.held` lists them).

    `threads`: torch threads in each worker (default: cores // workers).
    `tracker` (e.g. MLflow) gets each run's config, epochs and summary from this process, which
    receives them anyway; the caller opens and closes it.

    `trusted`: the user model code this process was given (its suite file, `--trust FILE`); a
    queued run naming other code is not claimed, but listed in `outcome.refused`.

    `device`: where this process trains whatever it claims. The device is the machine's, not
    the experiment's (it is outside the config hash): a run queued by a GPU grid is trained on
    this CPU when this process claims it; each run's summary records the device it ran on."""
    trusted = trusted if trusted is not None else TrustedModels()
    study = store.study(suite_name, create=False)
    outcome = GridOutcome(suite=suite_name)
    started = time.perf_counter()
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    context = mp.get_context("spawn")  # fork + torch threads is unsafe
    tasks: list[mp.Queue] = [context.Queue() for _ in range(workers)]
    events: mp.Queue = context.Queue()

    def start_worker(index: int) -> mp.Process:
        process = context.Process(
            target=_worker_main,
            args=(index, threads, str(data_dir) if data_dir else None, tasks[index], events),
            daemon=True,
        )
        process.start()
        return process

    processes = [start_worker(i) for i in range(workers)]
    ready: set[int] = set()  # workers that loaded the data and wait for runs
    busy: dict[int, tuple[int, str]] = {}  # worker -> (trial_id, label) of the run it trains
    display = _GridDisplay(progress, store.pending(study), suite_name)
    timing = store.timing(study)
    beats = store.heartbeats(study)  # stopped in the finally below
    beats.start()
    exhausted = False  # the last claim found nothing: look again only every poll_seconds
    last_look = 0.0
    waiting = WaitLine(log)

    def end(index: int) -> None:
        beats.discard(busy.pop(index)[0])
        display.run_done(index)
        display.end_worker(index)

    try:
        while True:
            if exhausted and time.monotonic() - last_look >= timing.poll_seconds:
                exhausted = False  # a held run may have come back: its holder died or went silent
            for index in range(workers):
                if index in busy or exhausted:
                    continue
                trial = _claim(store, study, trusted, outcome.refused, log)
                if trial is None:
                    exhausted, last_look = True, time.monotonic()
                    break
                attrs = trial.user_attrs
                run_dir = run_dir_for(
                    runs_root, suite_name, attrs["name"], attrs["seed"], trial.number
                )
                store.set_attr(trial._trial_id, "run_dir", str(run_dir))
                config = trusted.localize(attrs["config"])  # this machine's copy
                tasks[index].put((trial._trial_id, {**config, "device": device}, str(run_dir)))
                if tracker is not None:
                    tracker.start(
                        trial._trial_id,
                        _label(trial),
                        attrs["config"],
                        {"suite": suite_name, "trial": trial.number},
                        run_dir=run_dir,
                    )
                busy[index] = (trial._trial_id, _label(trial))
                beats.add(trial._trial_id)
                display.start_worker(index, _label(trial), attrs["config"]["epochs"])
            if not busy:
                state = store.progress(study, cells)
                if state.waiting and state.waiting <= len(outcome.refused):
                    state.waiting = 0  # nothing queued that this process may run
                if state.complete or not state.pending or (state.held and not wait):
                    break
                if state.held and not state.waiting:
                    waiting.show(state.held)
                time.sleep(timing.poll_seconds if not state.waiting else 0.2)
                exhausted = False
                continue
            try:
                kind, index, trial_id, payload = events.get(timeout=1.0)
            except queue.Empty:
                kind = ""
            if kind == "ready":
                ready.add(index)
            elif kind and busy.get(index, (None,))[0] != trial_id:
                kind = ""  # from a run already given back (its worker was replaced)
            if kind == "epoch":
                if not store.report_epoch(trial_id, payload["epoch"], payload["val_acc"]):
                    log(f"{busy[index][1]}: taken back by another process meanwhile")
                display.epoch(index)
                if tracker is not None:
                    tracker.epoch(trial_id, payload)
            elif kind == "done":
                summary, rows = payload
                if not store.finish(trial_id, summary, rows):
                    # this process went silent too long; the cell's re-queued copy counts
                    log(f"{busy[index][1]}: taken back meanwhile; this result not stored")
                    end(index)
                    continue
                if tracker is not None:
                    tracker.finish(trial_id, summary)
                if summary.get("state") == RunStatus.DIVERGED:
                    outcome.diverged += 1
                    epoch = summary.get("diverged_epoch")
                    log(f"{busy[index][1]}: diverged at epoch {epoch}")
                else:
                    outcome.finished += 1
                end(index)
            elif kind == "error":
                label = busy[index][1]
                outcome.failed += 1
                outcome.errors.append(f"{label}: {payload}")
                log(f"{label}: failed: {payload}")
                store.set_attr(trial_id, "error", payload)
                # not re-queued now (it would fail again at once); the next `grid` call retries
                store.fail(trial_id, "error")
                if tracker is not None:
                    tracker.fail(trial_id, payload)
                end(index)
            for index, process in enumerate(processes):
                # an exception at start-up (exit code > 0), not a kill (< 0): restarting the
                # worker would fail the same way, forever
                worker_started = index in ready or not events.empty()
                if not process.is_alive() and (process.exitcode or 0) > 0 and not worker_started:
                    if index in busy:
                        store.release(study, busy[index][0], "worker-died")
                        end(index)
                    raise WorkerStartError(
                        f"worker process {index} exited before it started (exit code "
                        f"{process.exitcode}); from a Python script, call mnistlab.grid under "
                        "`if __name__ == '__main__':` (worker processes import the script)"
                    )
            for index, (trial_id, label) in list(busy.items()):
                if not processes[index].is_alive():
                    # a worker killed under us: give its run back, start a fresh worker
                    outcome.retried += 1
                    log(f"{label}: worker {index} died; run queued again")
                    store.release(study, trial_id, "worker-died")
                    if tracker is not None:
                        tracker.fail(trial_id, "worker died")
                    end(index)
                    tasks[index] = context.Queue()  # the dead worker may hold the old one's lock
                    processes[index] = start_worker(index)
                    ready.discard(index)
    except KeyboardInterrupt:
        claimed = [trial_id for trial_id, _ in busy.values()]
        for trial_id in claimed:
            store.release(study, trial_id, "interrupted")
        log(f"interrupted: {len(claimed)} unfinished run(s) queued again; run `grid` to resume")
        raise
    finally:
        beats.stop()
        display.close()
        for index, process in enumerate(processes):
            if process.is_alive():
                tasks[index].put(None)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    outcome.seconds = time.perf_counter() - started
    outcome.progress = store.progress(study, cells)
    return outcome


def _label(trial: Any) -> str:
    return f"{trial.user_attrs['name']} s{trial.user_attrs['seed']}"


def _claim(
    store: RunStore,
    study: Any,
    trusted: TrustedModels,
    refused: list[str],
    log: Callable[[str], None],
) -> Any:
    """One claimed run, or None. A run whose model code this process was not given stays
    queued; it is named once."""

    def allowed(attrs: dict[str, Any]) -> bool:
        if trusted.localize(attrs.get("config", {})) is not None:
            return True
        label = f"{attrs.get('name')} s{attrs.get('seed')}"
        if label not in refused:
            refused.append(label)
            log(f"{label}: refused: {trusted.refusal(attrs.get('config', {}))}")
        return False

    return store.claim(study, accept=allowed)


class _GridDisplay:
    """One overall bar (runs done / total, ETA) and one bar per worker (epochs of its run)."""

    def __init__(self, enabled: bool, total: int, suite: str):
        self.progress = None
        self.tasks: dict[int, Any] = {}
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.overall = self.progress.add_task(f"grid {suite}", total=total)

    def start_worker(self, index: int, label: str, epochs: int) -> None:
        if self.progress is not None:
            self.tasks[index] = self.progress.add_task(f"  [{index}] {label}", total=epochs)

    def epoch(self, index: int) -> None:
        if self.progress is not None and index in self.tasks:
            self.progress.advance(self.tasks[index])

    def run_done(self, index: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.overall)

    def end_worker(self, index: int) -> None:
        if self.progress is not None and index in self.tasks:
            self.progress.remove_task(self.tasks.pop(index))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
