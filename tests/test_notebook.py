"""examples/own_model.ipynb runs from top to bottom in a fresh kernel (issue 15), so it cannot
rot: a net defined in a cell is summarised, trained on a subset and its curves are plotted."""

from __future__ import annotations

import json
import re
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest

WIDGET = "application/vnd.jupyter.widget-view+json"

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "own_model.ipynb"
REASON = "{} not importable (pip install 'mnistlab[notebook]')"


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat", reason=REASON.format("nbformat"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.long
def test_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason=REASON.format("nbformat"))
    nbclient = pytest.importorskip("nbclient", reason=REASON.format("nbclient"))
    pytest.importorskip("ipykernel", reason=REASON.format("ipykernel"))
    # the kernel inherits MNISTLAB_DATA (set by conftest) and runs in a scratch directory
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback

    outputs = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in outputs for o in c.outputs if o.output_type == "error"]
    stderr = [o.text for c in outputs for o in c.outputs if o.get("name") == "stderr"]
    assert not errors and not stderr, (errors, stderr)
    printed = "\n".join(stdout_of(c) for c in outputs)

    # the summary: a per-layer table, a total under the budget and the checklist
    total = re.search(r"total: ([\d,]+) params", printed)
    assert total, printed
    params = int(total.group(1).replace(",", ""))
    assert 0 < params < 8000
    assert "✓ params < 8,000" in printed and "✓ BatchNorm" in printed and "✓ GAP head" in printed

    # the run: numbers printed, and the run directory they came from
    result = re.search(
        r"val_acc (\d+\.\d\d)%  test_acc (\d+\.\d\d)%  best epoch (\d)  params ([\d,]+)", printed
    )
    assert result, printed
    val_acc, test_acc = float(result.group(1)), float(result.group(2))
    assert 0.0 <= val_acc <= 100.0 and 0.0 <= test_acc <= 100.0
    run_dir = tmp_path / re.search(r"run directory: (\S+)", printed).group(1)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["train_size"] == 3000
    assert f"{summary['val_acc']:.2f}" == result.group(1)
    assert f"{summary['test_acc']:.2f}" == result.group(2)

    # the curves: a figure rendered as an image
    images = [o for c in outputs for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 and "2 Axes" in images[0]["data"]["text/plain"]

    # the training progress bar: a widget where ipywidgets is installed; one line per epoch
    # stays in the cell's output either way
    widgets = [o for c in outputs for o in c.outputs if WIDGET in o.get("data", {})]
    if find_spec("ipywidgets") is not None:
        assert widgets, "no progress bar widget in the notebook's output"
    assert "epoch 1/2" in printed and "epoch 2/2" in printed

    # fitted to 8k in the notebook, trained at that width, the model given back
    fit = re.search(r"width ([\d.]+): ([\d,]+) params \(< 8,000\)", printed)
    fitted = int(fit.group(2).replace(",", "")) if fit else None
    assert fitted == summary["params"] == int(result.group(4).replace(",", "")) < 8000
    assert summary["model_sha256"] and "Net" in summary["model"]
    assert re.search(rf"Net {summary['params']:,} params torch.Size\(\[2, 10\]\)", printed)

    # the history: a table of the two epochs (a DataFrame's or mnistlab's own)
    history = [
        o["data"]["text/plain"]
        for c in outputs
        if "run.history" in c.source
        for o in c.outputs
        if o.output_type == "execute_result"
    ]
    assert history and "val_acc" in history[0] and len(history[0].splitlines()) >= 3
