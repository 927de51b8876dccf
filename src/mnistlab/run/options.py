"""How one run is carried out, apart from what it trains: the options `mnistlab train` takes as
flags and `mnistlab.train` as keywords, listed once so the two cannot drift apart.

`TrainConfig` is what a run trains (stored with its results); these are where it writes, where
its data comes from, how it reports and how many threads it uses (`threads` is recorded in
summary.json, since it can change a run's low bits).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from mnistlab.errors import ConfigError, choices_error

TRACKERS = ("mlflow",)


@dataclass(frozen=True)
class RunOptions:
    out: str | Path | None = None  # run directory (default runs/NAME, never overwritten)
    data_dir: str | Path | None = None  # MNIST files (default: found or downloaded)
    download: bool = True  # fetch MNIST when it is not found
    progress: bool = True  # progress bars
    threads: int | None = None  # torch threads (None: torch's, one per core)
    track: str | None = None  # mirror the run into a tracker: "mlflow"

    def __post_init__(self) -> None:
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ConfigError(f"threads must be a whole number >= 1, got {self.threads!r}")
        if self.track is not None and self.track not in TRACKERS:
            raise choices_error("track", self.track, list(TRACKERS))


#: the option names, in order (the CLI's flags and the API's keywords are tested against it)
RUN_OPTIONS = tuple(spec.name for spec in fields(RunOptions))
