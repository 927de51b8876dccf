"""Fault-injection helpers. Each test records (fault, trials, survived, lost) through the
`reliability` fixture; with MNISTLAB_RELIABILITY_REPORT=path the session writes them as JSON,
which is where the README's Reliability table comes from."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_RECORDS: list[dict] = []


class Recorder:
    def __call__(self, fault: str, trials: int, survived: int, lost: str = "nothing") -> None:
        _RECORDS.append({"fault": fault, "trials": trials, "survived": survived, "lost": lost})


@pytest.fixture
def reliability() -> Recorder:
    return Recorder()


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("MNISTLAB_RELIABILITY_REPORT")
    if target and _RECORDS:
        Path(target).write_text(json.dumps(_RECORDS, indent=2) + "\n")
