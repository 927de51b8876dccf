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


def test_models_and_data_do_not_import_upper_layers():
    # imports flow one way: data/models know nothing of engine, experiments, reports or cli
    for package in ("data", "models"):
        for path in (REPO / "src" / "mnistlab" / package).rglob("*.py"):
            text = path.read_text()
            for upper in ("engine", "experiments", "reports", "cli"):
                assert f"mnistlab.{upper}" not in text, f"{path} imports mnistlab.{upper}"
