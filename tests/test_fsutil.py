import os
import stat

import pytest

from mnistlab import fsutil


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "sub" / "best.pt"
    fsutil.atomic_write_bytes(path, b"old")
    fsutil.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_ctrl_c_while_the_temp_file_is_created_leaves_only_the_old_file(tmp_path, monkeypatch):
    """SIGINT can land inside the call that creates the temp file, before its name is returned
    (seen in CI: `train` interrupted after epoch 1 left a `.best.pt.*.tmp` behind)."""
    path = tmp_path / "best.pt"
    fsutil.atomic_write_bytes(path, b"old")
    real_open = os.open

    def open_then_interrupt(name, flags, *args, **kwargs):
        fd = real_open(name, flags, *args, **kwargs)
        if str(name).endswith(".tmp"):
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fsutil.atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    assert path.read_bytes() == b"old"


def test_a_failed_write_names_the_target_file(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OSError, match="not-a-dir"):
        fsutil.atomic_write_bytes(blocker / "best.pt", b"x")
