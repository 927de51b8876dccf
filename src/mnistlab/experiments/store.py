"""The store of runs and their queue: Optuna's RDB storage (SQLite by default, any SQLAlchemy URL).

Each run of a grid is an Optuna trial in the study named after the suite. Its user attributes
carry the run's `cell_id` (hash of the resolved config, seed included), `name`, `seed`, full
`config`, `run_dir`, and when finished its `summary` and per-epoch metrics (`epochs`); per-epoch
val accuracy is also the trial's intermediate value.

States: WAITING (queued) -> RUNNING (claimed by a worker, heartbeat kept) -> COMPLETE (value =
val_acc), or FAIL with user attribute `state` = `diverged` (a result: never re-run) or a run
taken back (re-queued as a new WAITING trial, so it is retried, not lost).

Taking runs back: a claim records its holder (`owner`: host, pid, process start time; see
`owner.py`) and a heartbeat. Every claim and enqueue first takes back each RUNNING trial whose
holder is known dead (same machine, pid gone or reused) at once, and any other whose heartbeat
is older than the study's grace (`Timing`, kept in the store so every machine uses the same).
A RUNNING trial without holder or heartbeat was left by a process killed inside a claim (a
claim writes both under the lock), so it is taken back too.

Exactly once: claiming a WAITING trial must be atomic. PostgreSQL/MySQL do it with the row lock
Optuna takes (`SELECT ... FOR UPDATE`); SQLite ignores that, so every claim and enqueue on a
SQLite store holds an exclusive file lock beside the database. A claim also refuses a cell that
already has a RUNNING or finished trial, so even a duplicate queue entry is never run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from mnistlab.config import TrainConfig
from mnistlab.errors import first_line
from mnistlab.experiments import DEFAULT_STORE
from mnistlab.experiments.heartbeat import Heartbeats, Holder, Timing
from mnistlab.experiments.owner import Liveness, Owner, liveness, this_process
from mnistlab.experiments.storage import (
    StoreError,
    masked_url,
    open_storage,
    postgres_driver_url,
    retry_locked,
    sqlite_path,
)
from mnistlab.models.reference import parse_reference, source_of
from mnistlab.records import DONE_STATES, RunStatus, RunSummary

# key of the PostgreSQL advisory lock that serialises enqueue and claim (any fixed 64-bit value)
PG_LOCK_KEY = 0x6D6E6973746C6162  # "mnistlab"
MAX_ATTEMPTS = 3  # automatic re-queues of one run within a grid before it is left failed


@dataclass(frozen=True)
class RunRecord:
    """One trial, flattened for results tables."""

    number: int
    name: str
    seed: int
    cell_id: str
    state: str  # waiting, running, finished, diverged, failed
    config: dict[str, Any]
    summary: RunSummary
    epochs: list[dict[str, Any]]
    run_dir: str
    aliases: tuple[str, ...] = ()
    owner: Owner | None = None  # RUNNING only: who holds it
    heartbeat_age: float | None = None  # RUNNING only: seconds since its last heartbeat
    grace_seconds: float | None = None  # RUNNING only: taken back once heartbeat_age exceeds it


@dataclass
class Progress:
    """Where the cells of a grid stand: a cell is done once finished, diverged or pruned."""

    total: int = 0
    done: int = 0
    waiting: int = 0
    held: list[Holder] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # label: reason, nothing queued or running

    @property
    def complete(self) -> bool:
        return self.done == self.total

    @property
    def pending(self) -> bool:
        """Some cell is queued or running: waiting can still finish it."""
        return self.waiting > 0 or bool(self.held)


def trial_attrs(name: str, config: TrainConfig, suite: str) -> dict[str, Any]:
    """What a stored run carries from the start (grid and tune alike): its cell id, name, seed
    and full config, and for a user's model a copy of its source (provenance on the trial)."""
    attrs: dict[str, Any] = {
        "cell_id": config.config_hash(),
        "name": name,
        "seed": config.seed,
        "config": config.to_dict(),
        "suite": suite,
    }
    if config.model_sha256:
        attrs["model_source"] = source_of(parse_reference(config.model))[0]
    return attrs


class RunStore:
    """A suite's study in an Optuna storage, with exactly-once claims."""

    def __init__(self, url: str = DEFAULT_STORE, *, heartbeat: bool = True):
        """`heartbeat=False`: read-only use (results, reports): never takes a run back."""
        self.url = url
        self.takes_back = heartbeat
        path = sqlite_path(url)
        self.lock_path = path.with_name(path.name + ".lock") if path else None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the store directory {path.parent}: {error}"
                ) from None
        kwargs: dict[str, Any] = {}
        if path is not None:
            # wait for another writer instead of failing with "database is locked"
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        storage_url = url
        if url.startswith("postgresql"):
            storage_url = postgres_driver_url(url)
            # an unreachable server fails within seconds, not after the OS's TCP timeout
            kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 5}}
        # Heartbeats are recorded with Optuna's record_heartbeat, but stale runs are found here
        # (`take_back`), not by Optuna's heartbeat options: those only act inside
        # Study.optimize, and cannot tell a dead holder on this machine from a slow one.
        try:
            with self.lock():
                self.storage = open_storage(storage_url, kwargs)
        except StoreError:
            raise
        except Exception as error:
            raise StoreError(
                f"cannot open store {masked_url(url)!r}: {first_line(error)}"
            ) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes: a file lock for a SQLite store (this machine), an
        advisory lock for PostgreSQL (every machine); a no-op for other databases."""
        if self.lock_path is None:
            storage = getattr(self, "storage", None)  # None while __init__ opens it
            if storage is not None and storage.engine.dialect.name == "postgresql":
                # Row locks alone are not enough: two enqueues at once queue a cell twice, and
                # a claim working from a stale list then runs the duplicate while the original
                # is running elsewhere. One lock per database serialises enqueue and claim, as
                # the file lock does for SQLite; the server frees it if this process dies.
                with storage.engine.connect() as connection:
                    connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({PG_LOCK_KEY})"))
                    try:
                        yield
                    finally:
                        connection.execute(
                            sqlalchemy.text(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
                        )
                        connection.commit()
                return
            yield
            return
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def study(self, suite: str, *, create: bool = True) -> optuna.Study:
        def load() -> optuna.Study:
            if create:
                return optuna.create_study(
                    study_name=suite,
                    storage=self.storage,
                    direction="maximize",
                    load_if_exists=True,
                )
            return optuna.load_study(study_name=suite, storage=self.storage)

        with self.lock():
            try:
                return retry_locked(load)
            except KeyError:
                names = [s.study_name for s in optuna.get_all_study_summaries(self.storage)]
                raise StoreError(
                    f"no suite {suite!r} in store {self.url}; stored: {', '.join(names) or 'none'}"
                ) from None

    def timing(self, study: optuna.Study) -> Timing:
        """The study's heartbeat timing, as stored; the defaults where none was set."""
        stored = retry_locked(lambda: study.user_attrs).get("timing")
        return Timing(**stored) if stored else Timing()

    def set_timing(self, study: optuna.Study, timing: Timing) -> None:
        """Store the study's timing: every process that opens it from now on uses it."""
        retry_locked(lambda: study.set_user_attr("timing", dataclasses.asdict(timing)))

    def suites(self) -> list[str]:
        return [s.study_name for s in optuna.get_all_study_summaries(self.storage)]

    # -- queue --
    def enqueue(self, study: optuna.Study, runs: list[tuple[str, TrainConfig]]) -> int:
        """Queue each (name, config) whose cell is not queued, running or done; return the count."""
        with self.lock():
            self.take_back(study)
            # cell_id -> name of the trial that holds (or will hold) that computation
            present: dict[str, str] = {}
            for trial in study.get_trials(deepcopy=False):
                if (
                    trial.state != TrialState.FAIL
                    or trial.user_attrs.get("state") == RunStatus.DIVERGED
                ):
                    present.setdefault(
                        trial.user_attrs.get("cell_id", ""), trial.user_attrs.get("name", "")
                    )
            # The same computation under another name (seed 000 repeats B inside C and D) runs
            # once and is listed under every name. Finished trials are read-only in Optuna, so
            # the extra names live in the study's attributes: cell_id -> [names].
            aliases: dict[str, list[str]] = dict(study.user_attrs.get("aliases", {}))
            changed = False
            new: dict[str, dict[str, Any]] = {}
            for name, config in runs:
                cell_id = config.config_hash()
                if cell_id in present:
                    if name != present[cell_id] and name not in aliases.get(cell_id, []):
                        aliases[cell_id] = [*aliases.get(cell_id, []), name]
                        changed = True
                    continue
                present[cell_id] = name
                new[cell_id] = trial_attrs(name, config, study.study_name)
            if changed:
                retry_locked(lambda: study.set_user_attr("aliases", aliases))
            for attrs in new.values():
                retry_locked(lambda attrs=attrs: study.enqueue_trial({}, user_attrs=attrs))
            return len(new)

    def claim(
        self, study: optuna.Study, accept: Callable[[dict[str, Any]], bool] | None = None
    ) -> FrozenTrial | None:
        """Atomically move one WAITING trial to RUNNING and return it; None when none is left.

        `accept(user_attrs)` limits the claim to matching runs (runs whose model code this process
        may run)."""
        with self.lock():
            self.take_back(study)
            trials = study.get_trials(deepcopy=False)
            busy = {
                t.user_attrs.get("cell_id")
                for t in trials
                if t.state in (TrialState.RUNNING, TrialState.COMPLETE)
                or t.user_attrs.get("state") == RunStatus.DIVERGED
            }
            for trial in sorted(trials, key=lambda t: t.number):
                if trial.state != TrialState.WAITING:
                    continue
                if accept is not None and not accept(trial.user_attrs):
                    continue
                if trial.user_attrs.get("cell_id") in busy:
                    # a duplicate queue entry (e.g. two machines enqueued at once): never run it
                    self.storage.set_trial_user_attr(trial._trial_id, "state", "duplicate")
                    self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                    continue
                # holder first, while WAITING: a RUNNING trial is never seen without one
                self.set_attr(trial._trial_id, "owner", this_process().to_attr())
                claimed = retry_locked(
                    lambda trial=trial: self.storage.set_trial_state_values(
                        trial._trial_id, TrialState.RUNNING
                    )
                )
                if claimed:
                    self.heartbeat(trial._trial_id)
                    return self.storage.get_trial(trial._trial_id)
            return None

    def own(self, trial_id: int) -> None:
        """Record this process as holder of a trial it just made RUNNING (`tune`: study.ask),
        with its first heartbeat. Call under `lock()`, in the same hold as the claim."""
        self.set_attr(trial_id, "owner", this_process().to_attr())
        self.heartbeat(trial_id)

    def take_back(self, study: optuna.Study) -> list[FrozenTrial]:
        """FAIL and re-queue each RUNNING trial whose holder is dead (at once) or silent for
        longer than the study's grace; return them. Call under `lock()`. No-op for a read-only
        store."""
        if not self.takes_back:
            return []
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return []
        me = this_process()
        grace = self.timing(study).grace_seconds
        ages = self.heartbeat_ages([t._trial_id for t in running])
        taken = []
        for trial in running:
            owner = Owner.from_attr(trial.user_attrs.get("owner"))
            age = ages.get(trial._trial_id)
            if owner is None or age is None:
                reason = "orphaned"  # killed inside its claim, which writes both under the lock
            elif liveness(owner, me) is Liveness.DEAD:
                reason = "holder-died"
            elif age > grace:
                reason = "stale"
            else:
                continue
            try:
                self.set_attr(trial._trial_id, "state", reason)
                changed = retry_locked(
                    lambda trial=trial: self.storage.set_trial_state_values(
                        trial._trial_id, TrialState.FAIL
                    )
                )
            except UpdateFinishedTrialError:
                continue  # finished meanwhile by its holder (a slow one, not a dead one)
            if changed:
                failed = self.storage.get_trial(trial._trial_id)
                _requeue(study, failed)
                taken.append(failed)
        return taken

    def heartbeat_ages(self, trial_ids: Collection[int]) -> dict[int, float]:
        """Seconds since each trial's last heartbeat, on the database's clock (the one every
        machine's heartbeats were written with); trials without one are left out."""
        if not trial_ids:
            return {}
        query = sqlalchemy.text(
            "SELECT trial_id, heartbeat, CURRENT_TIMESTAMP FROM trial_heartbeats "
            "WHERE trial_id IN :ids"
        ).bindparams(sqlalchemy.bindparam("ids", expanding=True))
        with self.storage.engine.connect() as connection:
            rows = retry_locked(
                lambda: connection.execute(query, {"ids": list(trial_ids)}).fetchall()
            )
        return {
            int(trial_id): (_as_datetime(now) - _as_datetime(beat)).total_seconds()
            for trial_id, beat, now in rows
        }

    def holders(self, study: optuna.Study) -> list[Holder]:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ages = self.heartbeat_ages([t._trial_id for t in running])
        grace = self.timing(study).grace_seconds
        return [
            Holder(
                trial.number,
                _trial_label(trial),
                Owner.from_attr(trial.user_attrs.get("owner")),
                ages.get(trial._trial_id),
                grace,
            )
            for trial in running
        ]

    def progress(self, study: optuna.Study, cells: Collection[str] | None = None) -> Progress:
        """Where `cells` (cell ids; default: every cell in the study) stand."""
        by_cell: dict[str, list[FrozenTrial]] = {}
        cell_of: dict[int, str] = {}  # trial number -> cell id
        for trial in study.get_trials(deepcopy=False):
            cell = trial.user_attrs.get("cell_id")
            if cell is not None and (cells is None or cell in cells):
                by_cell.setdefault(cell, []).append(trial)
                cell_of[trial.number] = cell
        wanted = set(by_cell) if cells is None else set(cells)
        progress = Progress(total=len(wanted))
        held_cells = []
        for cell in wanted:
            trials = sorted(by_cell.get(cell, []), key=lambda t: t.number)
            states = [_state_name(t) for t in trials]
            if any(s in (*DONE_STATES, RunStatus.PRUNED) for s in states):
                progress.done += 1
            elif RunStatus.RUNNING in states:
                held_cells.append(cell)
            elif RunStatus.WAITING in states:
                progress.waiting += 1
            elif trials:
                last = trials[-1]
                progress.failed.append(f"{_trial_label(last)} (trial {last.number}): {states[-1]}")
            else:
                progress.failed.append(f"cell {cell}: not in the store")
        if held_cells:
            progress.held = [h for h in self.holders(study) if cell_of.get(h.number) in held_cells]
        return progress

    def pending(self, study: optuna.Study) -> int:
        states = (TrialState.WAITING, TrialState.RUNNING)
        return len(study.get_trials(deepcopy=False, states=states))

    # -- a running trial --
    def heartbeats(self, study: optuna.Study) -> Heartbeats:
        """The heartbeat thread for this process's runs of `study` (a context manager)."""
        return Heartbeats(self.heartbeat, self.timing(study))

    def heartbeat(self, trial_id: int) -> None:
        retry_locked(lambda: self.storage.record_heartbeat(trial_id))

    def set_attr(self, trial_id: int, key: str, value: Any) -> None:
        retry_locked(lambda: self.storage.set_trial_user_attr(trial_id, key, value))

    def report_epoch(self, trial_id: int, epoch: int, val_acc: float) -> bool:
        """False when the trial is no longer this process's (taken back while silent)."""
        try:
            if math.isfinite(val_acc):
                retry_locked(
                    lambda: self.storage.set_trial_intermediate_value(trial_id, epoch, val_acc)
                )
        except UpdateFinishedTrialError:
            return False
        self.heartbeat(trial_id)
        return True

    def finish(self, trial_id: int, summary: dict[str, Any], epochs: list[dict[str, Any]]) -> bool:
        """Record a finished run: COMPLETE with val_acc, or FAIL marked `diverged`. False when
        the trial was taken back meanwhile (its re-queued copy is the cell's run now)."""
        try:
            self._finish(trial_id, summary, epochs)
        except UpdateFinishedTrialError:
            return False
        return True

    def _finish(self, trial_id: int, summary: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
        clean = json.loads(json.dumps(summary, default=str))
        self.set_attr(trial_id, "summary", clean)
        self.set_attr(trial_id, "epochs", epochs)
        state = summary.get("state", RunStatus.FINISHED)
        self.set_attr(trial_id, "state", state)
        if state == RunStatus.FINISHED and summary.get("val_acc") is not None:
            retry_locked(
                lambda: self.storage.set_trial_state_values(
                    trial_id, TrialState.COMPLETE, [float(summary["val_acc"])]
                )
            )
        else:
            retry_locked(lambda: self.storage.set_trial_state_values(trial_id, TrialState.FAIL))

    def fail(self, trial_id: int, reason: str) -> None:
        self.set_attr(trial_id, "state", reason)
        retry_locked(lambda: self.storage.set_trial_state_values(trial_id, TrialState.FAIL))

    def release(self, study: optuna.Study, trial_id: int, reason: str) -> None:
        """Give a claimed run back (Ctrl-C, crash of its worker): FAIL it and queue it again."""
        self.set_attr(trial_id, "state", reason)
        with self.lock():
            if retry_locked(lambda: self.storage.set_trial_state_values(trial_id, TrialState.FAIL)):
                _requeue(study, self.storage.get_trial(trial_id))

    # -- reading --
    def records(self, study: optuna.Study) -> list[RunRecord]:
        aliases: dict[str, list[str]] = study.user_attrs.get("aliases", {})
        trials = study.get_trials(deepcopy=False)
        ages = self.heartbeat_ages([t._trial_id for t in trials if t.state == TrialState.RUNNING])
        grace = self.timing(study).grace_seconds if ages else None
        records = []
        for trial in trials:
            attrs = trial.user_attrs
            if "cell_id" not in attrs:
                continue
            records.append(
                RunRecord(
                    number=trial.number,
                    name=attrs.get("name", ""),
                    seed=int(attrs.get("seed", 0)),
                    cell_id=attrs["cell_id"],
                    state=_state_name(trial),
                    config=attrs.get("config", {}),
                    summary=attrs.get("summary", {}),
                    epochs=attrs.get("epochs", []),
                    run_dir=attrs.get("run_dir", ""),
                    aliases=tuple(aliases.get(attrs["cell_id"], [])),
                    owner=Owner.from_attr(attrs.get("owner"))
                    if trial.state == TrialState.RUNNING
                    else None,
                    heartbeat_age=ages.get(trial._trial_id),
                    grace_seconds=grace if trial.state == TrialState.RUNNING else None,
                )
            )
        return records


def _trial_label(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    return f"{attrs.get('name', f'trial {trial.number}')} s{attrs.get('seed', '?')}"


def _as_datetime(value: Any) -> datetime:
    """A timestamp from the database as a naive datetime: SQLite returns text, PostgreSQL an
    aware datetime for CURRENT_TIMESTAMP (Optuna stores heartbeats naive in the same zone)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


def _state_name(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        return RunStatus.FINISHED
    if trial.state == TrialState.WAITING:
        return RunStatus.WAITING
    if trial.state == TrialState.RUNNING:
        return RunStatus.RUNNING
    if trial.state == TrialState.PRUNED:
        return RunStatus.PRUNED
    return str(trial.user_attrs.get("state", RunStatus.FAILED))


def _requeue(study: optuna.Study, failed: FrozenTrial) -> None:
    """Queue a fresh copy of a run whose worker died or was interrupted, once."""
    attrs = {
        k: v
        for k, v in failed.user_attrs.items()
        if k in ("cell_id", "name", "seed", "config", "suite")
    }
    attrs["retry_of"] = failed.number
    attrs["attempt"] = int(failed.user_attrs.get("attempt", 1)) + 1
    if attrs["attempt"] > MAX_ATTEMPTS:
        return  # keeps failing: left FAIL; a later `grid` call queues it afresh
    # a search trial (`mnistlab tune`) is retried at the same point; grid trials have no params
    study.enqueue_trial(dict(failed.params), user_attrs=attrs)
