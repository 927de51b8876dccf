"""Many processes on one PostgreSQL store: a real server (Debian's `postgresql` package) started
on loopback for this module, 3 grid processes on one grid and 3 tune processes on one study."""

from __future__ import annotations

import collections
import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.experiments.store import RunStore
from quick_config import quick_base

# half-width tiny (4,130 params): each run's one-off 10k test evaluation costs half as much
SUITE = (
    'name = "shared"\n[base]\n'
    + quick_base(width=0.5)
    + """[[groups]]
name = "g"
variants = [ { name = "sgd" }, { name = "adam", optimizer = "adam", lr = 0.003 } ]
axes = { batch_size = [64] }
axis_labels = { batch_size = "bs" }
"""
)

SPACE = (
    'name = "shared-search"\n[base]\n'
    + quick_base(width=0.5, batch_size=None, lr=None)
    + """[params]
lr = { low = 0.005, high = 0.2, log = true }
batch_size = { choices = [32, 64] }
"""
)

INSTALL = "install Debian's postgresql package (apt-get install -y postgresql)"


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _skip(reason: str) -> None:
    # printed beside the test in the summary (addopts has -rs): never a silent pass
    pytest.skip(f"PostgreSQL test skipped: {reason}")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster in a temp dir on a free loopback port, stopped after."""
    bindir = _pg_bindir()
    if bindir is None:
        _skip(f"initdb/pg_ctl not found; {INSTALL}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            _skip("no PostgreSQL driver for Python: pip install 'mnistlab[postgres]'")
    # PostgreSQL refuses to run as root: as root, run the server binaries as `postgres`, in a
    # directory under /tmp that user can reach (pytest's tmp_path is private to root)
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="mnistlab-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            _skip(f"running as root and there is no 'postgres' user; {INSTALL}")
        if runuser is None:
            shutil.rmtree(root)
            _skip("running as root without runuser to start the server as 'postgres'")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=120, cwd=root
        )

    steps = [
        (str(bindir / "initdb"), "-D", str(data), "-U", "mnistlab", "--auth=trust", "--no-sync"),
        (
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ),
        (str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mnistlab", "lab"),
    ]
    started = False
    try:
        for step in steps:
            result = run(*step)
            if result.returncode != 0:
                tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
                log = root / "server.log"
                if log.exists():
                    tail += log.read_text(errors="replace").strip().splitlines()[-3:]
                _skip(f"cannot start a server: {Path(step[0]).name} failed: {' | '.join(tail)}")
            started = started or step[-1] == "start"
        yield f"postgresql://mnistlab@127.0.0.1:{port}/lab"
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mnistlab.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
        outputs.append(out)
    return outputs


def _results(url: str, suite: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["results", "--store", url, "--suite", suite, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_three_grid_processes_share_one_grid_each_cell_runs_once(
    postgres_url, tmp_path, capsys, mnist_dir
):
    (tmp_path / "shared.toml").write_text(SUITE)
    # every process queues the grid (at the same moment) and works on it: the harshest case
    processes = [
        _start(
            [
                "grid",
                "shared.toml",
                "--seeds",
                "2",
                "--store",
                postgres_url,
                "--runs-dir",
                f"runs{i}",
                "--data-dir",
                str(mnist_dir),
                "--no-progress",
            ],
            tmp_path,
        )
        for i in range(3)
    ]
    outputs = _finish(processes)
    queued = sum(int(out.split(" newly queued")[0].rsplit(" ", 1)[-1]) for out in outputs)
    assert queued == 4, outputs  # 2 configs x 2 seeds, queued once between them
    runs = _results(postgres_url, "shared", capsys)
    finished = [r for r in runs if r["state"] == "finished"]
    per_cell = collections.Counter(r["cell_id"] for r in finished)
    assert len(per_cell) == 4 and max(per_cell.values()) == 1, per_cell
    assert {r["state"] for r in runs} == {"finished"}
    for run in finished:
        summary = json.loads((tmp_path / run["run_dir"] / "summary.json").read_text())
        assert summary["val_acc"] == run["val_acc"] and summary["seed"] == run["seed"]


def test_three_tune_processes_share_one_study(postgres_url, tmp_path, capsys, mnist_dir):
    (tmp_path / "space.toml").write_text(SPACE)
    argv = ["tune", "--space", "space.toml", "--trials", "4", "--study", "search"]
    argv += ["--store", postgres_url, "--data-dir", str(mnist_dir), "--pruner", "none"]
    outputs = _finish([_start(argv, tmp_path) for _ in range(3)])
    store = RunStore(postgres_url, heartbeat=False)
    trials = store.study("search", create=False).trials
    done = [t for t in trials if t.state.is_finished()]
    # each process claims a trial slot under the store's lock before training: exactly 4
    assert len(done) == 4 and len(trials) == 4, outputs
    assert all(t.user_attrs["state"] == "finished" for t in done)
    run_dirs = [t.user_attrs["run_dir"] for t in done]
    assert len(set(run_dirs)) == len(run_dirs)
    for trial in done:
        summary = json.loads((tmp_path / trial.user_attrs["run_dir"] / "summary.json").read_text())
        assert trial.value == summary["val_acc"] == trial.user_attrs["summary"]["val_acc"]
    assert sum(out.count(": finished, val_acc") for out in outputs) == len(done)
    assert all("best trial" in out for out in outputs)
    runs = _results(postgres_url, "search", capsys)
    assert len(runs) == len(done) and all(r["val_acc"] is not None for r in runs)


def _has_driver() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("psycopg", "psycopg2"))


def test_unreachable_database_is_one_line_exit_2_within_seconds(capsys):
    # Runs with or without the `postgres` extra: each case has its own right message.
    url = "postgresql://u:secret@127.0.0.1:1/x"
    for argv in (["results", "--store", url], ["worker", "--suite", "s", "--store", url]):
        started = time.monotonic()
        code = main(argv)
        elapsed = time.monotonic() - started
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert elapsed < 15, elapsed
        assert "secret" not in err and "Traceback" not in err, err
        if _has_driver():
            # the driver's own reason, naming host and port
            assert "127.0.0.1" in err, err
            if importlib.util.find_spec("psycopg") is not None:
                assert "port 1 failed" in err and "refused" in err.lower(), err
        else:
            # without the extra: what to install, before any connection is tried
            assert "needs a driver" in err and "mnistlab[postgres]" in err, err
