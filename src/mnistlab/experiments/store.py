"""The store of runs and their queue: Optuna's RDB storage (SQLite by default, any SQLAlchemy URL).

Each run of a grid is an Optuna trial in the study named after the suite. Its user attributes
carry the run's `cell_id` (hash of the resolved config, seed included), `name`, `seed`, full
`config`, `run_dir`, and when finished its `summary` and per-epoch metrics (`epochs`); per-epoch
val accuracy is also the trial's intermediate value.

States: WAITING (queued) -> RUNNING (claimed by a worker, heartbeat kept) -> COMPLETE (value =
val_acc), or FAIL with user attribute `state` = `diverged` (a result: never re-run) or a stale /
interrupted run (re-queued as a new WAITING trial, so it is retried, not lost).

Exactly once: claiming a WAITING trial must be atomic. PostgreSQL/MySQL do it with the row lock
Optuna takes (`SELECT ... FOR UPDATE`); SQLite ignores that, so every claim and enqueue on a
SQLite store holds an exclusive file lock beside the database. A claim also refuses a cell that
already has a RUNNING or finished trial, so even a duplicate queue entry is never run twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from mnistlab.config import TrainConfig
from mnistlab.errors import MnistlabError
from mnistlab.experiments import DEFAULT_STORE

# A RUNNING trial without a heartbeat for GRACE_SECONDS belongs to a dead worker. The
# environment may shorten both (fault-injection tests); every process on a store must agree.
HEARTBEAT_SECONDS = int(os.environ.get("MNISTLAB_HEARTBEAT_SECONDS", "20"))
GRACE_SECONDS = int(os.environ.get("MNISTLAB_GRACE_SECONDS", "60"))
# key of the PostgreSQL advisory lock that serialises enqueue and claim (any fixed 64-bit value)
PG_LOCK_KEY = 0x6D6E6973746C6162  # "mnistlab"
MAX_ATTEMPTS = 3  # automatic re-queues of one run within a grid before it is left failed
T = TypeVar("T")

optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats and fail_stale_trials are marked experimental; the warning would repeat every claim
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
logging.getLogger("optuna").setLevel(logging.WARNING)


class StoreError(MnistlabError):
    """The store URL cannot be opened or used."""


@dataclass(frozen=True)
class RunRecord:
    """One trial, flattened for results tables."""

    number: int
    name: str
    seed: int
    cell_id: str
    state: str  # waiting, running, finished, diverged, failed
    config: dict[str, Any]
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    run_dir: str
    aliases: tuple[str, ...] = ()


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


def retry_locked(action: Callable[[], T], attempts: int = 8) -> T:
    """Retry on SQLite's 'database is locked' with backoff instead of failing the user's grid."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:  # sqlalchemy OperationalError, wrapped or not
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


POSTGRES_INSTALL = "pip install 'mnistlab[postgres]'"


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def postgres_driver_url(url: str) -> str:
    """`postgresql://` with an explicit driver: SQLAlchemy 2.1 means psycopg 3 by it, 2.0
    psycopg2, so the bare scheme fails whenever the other one is installed."""
    scheme, sep, rest = url.partition("://")
    if scheme != "postgresql":
        return url  # the user named a driver
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        try:
            __import__(module)
        except ImportError:
            continue
        return f"postgresql+{driver}{sep}{rest}"
    raise StoreError(f"a PostgreSQL store needs a driver: {POSTGRES_INSTALL}")


def _open_storage(url: str, kwargs: dict[str, Any]) -> RDBStorage:
    # Several processes opening a new PostgreSQL database at once race to create Optuna's
    # tables ("duplicate key ... pg_type_typname_nsp_index"); the loser finds them made when
    # it tries again. (SQLite stores are opened under the file lock.)
    for attempt in range(5):
        try:
            return RDBStorage(url, **kwargs)
        except Exception as error:
            text = str(error).lower()
            if attempt == 4 or not ("duplicate key" in text or "already exists" in text):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


class RunStore:
    """A suite's study in an Optuna storage, with exactly-once claims."""

    def __init__(self, url: str = DEFAULT_STORE, *, heartbeat: bool = True):
        self.url = url
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
        if heartbeat:
            kwargs.update(
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=_requeue,
            )
        try:
            with self.lock():
                self.storage = _open_storage(storage_url, kwargs)
        except StoreError:
            raise
        except Exception as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise StoreError(f"cannot open store {masked_url(url)!r}: {first_line}") from None

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

    def suites(self) -> list[str]:
        return [s.study_name for s in optuna.get_all_study_summaries(self.storage)]

    # -- queue --
    def enqueue(self, study: optuna.Study, runs: list[tuple[str, TrainConfig]]) -> int:
        """Queue each (name, config) whose cell is not queued, running or done; return the count."""
        with self.lock():
            fail_stale_trials(study)
            # cell_id -> name of the trial that holds (or will hold) that computation
            present: dict[str, str] = {}
            for trial in study.get_trials(deepcopy=False):
                if trial.state != TrialState.FAIL or trial.user_attrs.get("state") == "diverged":
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
                new[cell_id] = {
                    "cell_id": cell_id,
                    "name": name,
                    "seed": config.seed,
                    "config": config.to_dict(),
                    "suite": study.study_name,
                }
            if changed:
                retry_locked(lambda: study.set_user_attr("aliases", aliases))
            for attrs in new.values():
                retry_locked(lambda attrs=attrs: study.enqueue_trial({}, user_attrs=attrs))
            return len(new)

    def claim(
        self, study: optuna.Study, accept: Callable[[dict[str, Any]], bool] | None = None
    ) -> FrozenTrial | None:
        """Atomically move one WAITING trial to RUNNING and return it; None when none is left.

        `accept(user_attrs)` limits the claim to matching runs (runs that can train fused)."""
        with self.lock():
            fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            busy = {
                t.user_attrs.get("cell_id")
                for t in trials
                if t.state in (TrialState.RUNNING, TrialState.COMPLETE)
                or t.user_attrs.get("state") == "diverged"
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
                claimed = retry_locked(
                    lambda trial=trial: self.storage.set_trial_state_values(
                        trial._trial_id, TrialState.RUNNING
                    )
                )
                if claimed:
                    self.storage.record_heartbeat(trial._trial_id)
                    return self.storage.get_trial(trial._trial_id)
            return None

    def pending(self, study: optuna.Study) -> int:
        states = (TrialState.WAITING, TrialState.RUNNING)
        return len(study.get_trials(deepcopy=False, states=states))

    # -- a running trial --
    def heartbeat(self, trial_id: int) -> None:
        retry_locked(lambda: self.storage.record_heartbeat(trial_id))

    def set_attr(self, trial_id: int, key: str, value: Any) -> None:
        retry_locked(lambda: self.storage.set_trial_user_attr(trial_id, key, value))

    def report_epoch(self, trial_id: int, epoch: int, val_acc: float) -> None:
        if math.isfinite(val_acc):
            retry_locked(
                lambda: self.storage.set_trial_intermediate_value(trial_id, epoch, val_acc)
            )
        self.heartbeat(trial_id)

    def finish(self, trial_id: int, summary: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
        """Record a finished run: COMPLETE with val_acc, or FAIL marked `diverged`."""
        clean = json.loads(json.dumps(summary, default=str))
        self.set_attr(trial_id, "summary", clean)
        self.set_attr(trial_id, "epochs", epochs)
        state = summary.get("state", "finished")
        self.set_attr(trial_id, "state", state)
        if state == "finished" and summary.get("val_acc") is not None:
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
        records = []
        for trial in study.get_trials(deepcopy=False):
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
                )
            )
        return records


def _state_name(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        return "finished"
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    return str(trial.user_attrs.get("state", "failed"))


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
