"""Fault-injection helpers. Each test records (fault, trials, survived, lost) through the
`reliability` fixture; with MNISTLAB_RELIABILITY_REPORT=path the session writes them as JSON,
with the commit they were measured on, which is where the Reliability table in
docs/reliability.md comes from (`python lab/reliability/reliability_table.py`)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    def __init__(self, records: list[dict[str, Any]]):
        self.records = records

    def __call__(self, fault: str, trials: int, survived: int, lost: str = "nothing") -> None:
        self.records.append({"fault": fault, "trials": trials, "survived": survived, "lost": lost})


def pytest_configure(config: pytest.Config) -> None:
    # on the session's config (not a module global): what this session recorded, and since when
    config.stash[_RECORDS] = []
    config.stash[_STARTED] = time.monotonic()


_RECORDS = pytest.StashKey[list]()
_STARTED = pytest.StashKey[float]()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Recorder:
    return Recorder(request.config.stash[_RECORDS])


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("MNISTLAB_RELIABILITY_REPORT")
    records = session.config.stash.get(_RECORDS, [])
    if not target or not records:
        return
    import torch

    report = {
        "commit": _git("rev-parse", "HEAD"),
        # uncommitted changes to the code or tests under measurement, if any
        "uncommitted": _git("status", "--porcelain", "--", "src", "tests").splitlines(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "tests": session.testscollected,
        "failed": session.testsfailed,
        "seconds": round(time.monotonic() - session.config.stash[_STARTED]),
        "records": records,
    }
    Path(target).write_text(json.dumps(report, indent=2) + "\n")
