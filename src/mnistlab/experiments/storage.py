"""Opening an Optuna RDB storage from a URL: SQLite paths, PostgreSQL drivers, password-free
messages, and retries where SQLite or a fresh PostgreSQL database make a first try fail."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.storages import RDBStorage

from mnistlab.errors import MnistlabError

T = TypeVar("T")
POSTGRES_INSTALL = "pip install 'mnistlab[postgres]'"

optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats and fail_stale_trials are marked experimental; the warning would repeat every claim
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
logging.getLogger("optuna").setLevel(logging.WARNING)


class StoreError(MnistlabError):
    """The store URL cannot be opened or used."""


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


def open_storage(url: str, kwargs: dict[str, Any]) -> RDBStorage:
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
