"""Crash-safe file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write to a temp file in the same directory, fsync it, then rename over `path`."""
    path = Path(path)
    # the temp name is known before the file exists, so a Ctrl-C at any point, even inside
    # the call that creates it, finds the name to remove (mkstemp names it only on return)
    tmp_path = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0o666 less the umask: as readable as any file the user writes
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException as error:
        # a failed write (disk full, Ctrl-C) leaves the previous file untouched
        tmp_path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            # name the file the user knows, not the temp file
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _fsync_dir(directory: Path) -> None:
    # makes the rename itself durable; not possible on every platform/filesystem
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
