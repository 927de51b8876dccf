"""Run directories: a new one per run, never an existing one with files in it."""

from __future__ import annotations

from pathlib import Path

from mnistlab.errors import ConfigError


def default_out_dir(name: str, root: Path = Path("runs")) -> Path:
    """runs/NAME, or runs/NAME-2, -3 ... so an earlier run is never overwritten."""
    candidate = root / name
    index = 2
    while candidate.exists():
        candidate = root / f"{name}-{index}"
        index += 1
    return candidate


def check_out_dir(out: Path, *, flag: str = "--out ", fix: str = "choose a new directory") -> None:
    """Refuse a run directory that holds files (an earlier run's), naming the fix."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{flag}{out} exists and is not empty; {fix}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag}{out}: {parent} is a file, not a directory; {fix}")
            break
