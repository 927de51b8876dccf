"""Who holds a claimed run: host, pid and process start time, so a restart can tell a dead
holder from a live one without waiting for its heartbeat to go stale.

A pid alone is not enough: after a crash the kernel may hand the same pid to an unrelated
process. The start time (field 22 of /proc/PID/stat, clock ticks since boot) tells a reused pid
from the original. Two processes can only be compared when they share a pid space: the same
host name, boot (a reboot restarts pids) and pid namespace (containers). Anything else is
"elsewhere": only its heartbeat can say it died.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Liveness(Enum):
    ALIVE = "alive"  # same pid space, the same process is still running
    DEAD = "dead"  # same pid space, the pid is gone, a zombie, or reused by another process
    ELSEWHERE = "elsewhere"  # another machine, boot or container: cannot be checked from here


@dataclass(frozen=True)
class Owner:
    host: str
    space: str  # boot id + pid namespace: equal only for processes that can see each other's pids
    pid: int
    start: int | None  # start time in clock ticks since boot; None without /proc

    def to_attr(self) -> dict[str, Any]:
        return {"host": self.host, "space": self.space, "pid": self.pid, "start": self.start}

    @classmethod
    def from_attr(cls, value: Any) -> Owner | None:
        if not isinstance(value, dict):
            return None
        try:
            start = value.get("start")
            return cls(
                str(value["host"]),
                str(value.get("space", "")),
                int(value["pid"]),
                None if start is None else int(start),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        return f"{self.host} pid {self.pid}"


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _pid_space() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{_read('/proc/sys/kernel/random/boot_id')}/{namespace}"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a pid from /proc, None if there is no such process."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    except (IndexError, ValueError):
        return None


def this_process() -> Owner:
    pid = os.getpid()
    stat = _stat(pid)
    return Owner(socket.gethostname(), _pid_space(), pid, stat[1] if stat else None)


def liveness(owner: Owner, me: Owner) -> Liveness:
    """Whether `owner` is still running, seen from the process `me`."""
    if (owner.host, owner.space) != (me.host, me.space):
        return Liveness.ELSEWHERE
    if owner.start is not None and me.start is not None:
        stat = _stat(owner.pid)
        if stat is None or stat[0] in ("Z", "X") or stat[1] != owner.start:
            return Liveness.DEAD
        return Liveness.ALIVE
    try:  # no /proc (macOS): the pid alone, without protection against reuse
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return Liveness.DEAD
    except PermissionError:
        return Liveness.ALIVE
    return Liveness.ALIVE
