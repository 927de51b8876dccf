"""Who holds a running run and whether it is alive: the store's heartbeat timing, the one
heartbeat thread of a process (grid and tune alike), and the line shown while waiting for runs
other processes hold."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mnistlab.experiments.owner import Owner
from mnistlab.experiments.storage import StoreError


@dataclass(frozen=True)
class Timing:
    """How often a holder records its heartbeat, and how old the last one may be before its run
    is taken back (its holder on another machine is presumed dead). Kept in the store, as the
    study's `timing` attribute, because every process on a store must use the same."""

    heartbeat_seconds: float = 20.0
    grace_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_seconds < self.grace_seconds:
            raise StoreError(
                f"heartbeat_seconds must be > 0 and below grace_seconds, got "
                f"{self.heartbeat_seconds} and {self.grace_seconds}"
            )

    @property
    def poll_seconds(self) -> float:
        """How often a process with nothing to train looks for runs to take back."""
        return max(0.5, min(5.0, self.grace_seconds / 4))


@dataclass(frozen=True)
class Holder:
    """A RUNNING trial and who holds it, as seen by this process."""

    number: int
    label: str
    owner: Owner | None
    heartbeat_age: float | None  # None: no heartbeat recorded yet
    grace_seconds: float

    def describe(self) -> str:
        who = self.owner.describe() if self.owner else "unknown holder"
        if self.heartbeat_age is None:
            return f"{self.label} (trial {self.number}): {who}, no heartbeat yet"
        stale_in = max(0.0, self.grace_seconds - self.heartbeat_age)
        return (
            f"{self.label} (trial {self.number}): {who}, heartbeat {self.heartbeat_age:.0f}s "
            f"ago, taken back if none for {stale_in:.0f}s more"
        )


class Heartbeats:
    """The heartbeat of every run this process holds, recorded from one thread every
    heartbeat_seconds / 2, for grid and tune alike: an epoch longer than the grace never makes
    a live holder look dead, whatever its main loop is doing."""

    def __init__(self, beat: Callable[[int], None], timing: Timing):
        """`beat(trial_id)` records one heartbeat (`RunStore.heartbeat`)."""
        self.beat, self.interval = beat, timing.heartbeat_seconds / 2
        self.trial_ids: set[int] = set()
        self.guard = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="mnistlab-heartbeat", daemon=True)

    def add(self, trial_id: int) -> None:
        with self.guard:
            self.trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self.guard:
            self.trial_ids.discard(trial_id)

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.guard:
                held = list(self.trial_ids)
            for trial_id in held:
                with contextlib.suppress(Exception):  # a missed beat only brings staleness closer
                    self.beat(trial_id)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def __enter__(self) -> Heartbeats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WaitLine:
    """'waiting for N run(s) held by other processes: ...' (grid and tune), printed when the
    held runs change, else at most every 30 s."""

    def __init__(self, log: Callable[[str], None], prefix: str = "", what: str = "run(s)"):
        self.log, self.prefix, self.what = log, prefix, what
        self.shown: tuple[int, ...] = ()
        self.at = 0.0

    def show(self, held: list[Holder]) -> None:
        numbers = tuple(sorted(h.number for h in held))
        if numbers == self.shown and time.monotonic() - self.at < 30:
            return
        self.shown, self.at = numbers, time.monotonic()
        self.log(
            f"{self.prefix}waiting for {len(held)} {self.what} held by other processes: "
            + "; ".join(h.describe() for h in held)
        )
