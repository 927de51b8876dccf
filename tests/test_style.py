import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [ruff, "check", "src", "tests"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The layers, bottom to top; a module may import its own layer and those below it, never above.
# `run` owns what a run is (spec, model build, checkpoint, trust) and sits between models and
# engine; `inference` and `api` sit beside reports, `cli` on top of everything.
LAYERS = {
    "data": 0,
    "models": 1,
    "run": 2,
    "engine": 3,
    "experiments": 4,
    "reports": 5,
    "inference": 5,
    "api": 5,
    "cli": 6,
}


def _upward_imports(relative: str, text: str) -> list[str]:
    """The layers at or above `relative`'s own (other than itself) that `text` imports."""
    own = relative.split("/")[0].removesuffix(".py")
    if own not in LAYERS:
        return []  # config, errors, recipes...: plain values every layer may use
    return [
        other
        for other, level in LAYERS.items()
        if other != own and level >= LAYERS[own] and f"mnistlab.{other}" in text
    ]


def test_imports_flow_one_way():
    root = REPO / "src" / "mnistlab"
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        assert not _upward_imports(relative, path.read_text()), relative


def test_the_layer_rule_catches_upward_and_sideways_imports():
    assert _upward_imports("engine/x.py", "from mnistlab.experiments.store import S") == [
        "experiments"
    ]
    assert _upward_imports("reports/x.py", "import mnistlab.inference") == ["inference"]
    assert _upward_imports("models/x.py", "from mnistlab.run import spec") == ["run"]
    assert _upward_imports("cli.py", "from mnistlab.reports import build") == []
