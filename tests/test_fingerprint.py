"""Numerics fingerprint: the default config's first training steps give the committed losses.

Every accuracy figure in README/docs was produced by the training numerics as they were (init,
batch order, augmentation and dropout random streams, kernels). A change that moves them — a
new random stream, a reordered draw, another kernel — changes those figures too, so this test
fails and names them: re-run them in the same change, then refresh the fingerprint with
`MNISTLAB_UPDATE_FINGERPRINT=1 pytest tests/test_fingerprint.py`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mnistlab.config import TrainConfig
from mnistlab.data import split_mnist
from mnistlab.engine.trainer import train_run

FINGERPRINT = Path(__file__).parent / "data" / "fingerprint.json"
# the documented figures that come from training runs (see each one's raw output)
FIGURES = (
    "README.md Quick-start table (docs/results/default-train*.txt) and the shipped default "
    "weights (tools/ship_run.py; docs/inference.md)",
    "docs/grids.md seed000 at 3 epochs and docs/report-seed000",
    "docs/accuracy.md accuracy-under-a-budget table and shipped weights (src/mnistlab/pretrained)",
    "docs/results/* grids, ablations, speedrun and tune studies",
)
# the default recipe, shortened: 2 epochs of 640 images = 10 steps, augmentation and dropout on
CONFIG = TrainConfig(epochs=2, train_subset=640, val_size=1000, device="cpu")
RELATIVE_TOLERANCE = 1e-5  # low bits may differ between CPUs; a changed stream moves ~1e-2


def _step_losses(mnist, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    losses: list[float] = []
    original = F.cross_entropy

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        loss = original(*args, **kwargs)
        if loss.requires_grad:  # a training step, not an evaluation
            losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(F, "cross_entropy", recording)
    splits = split_mnist(mnist, val_size=CONFIG.val_size, seed=0, train_subset=CONFIG.train_subset)
    torch.set_num_threads(1)  # thread count can change reduction order
    train_run(CONFIG, splits, progress=False, log=None)
    return losses


def test_default_config_numerics_match_the_fingerprint(mnist, monkeypatch) -> None:
    threads = torch.get_num_threads()
    try:
        losses = _step_losses(mnist, monkeypatch)
    finally:
        torch.set_num_threads(threads)
    assert len(losses) == 10
    if os.environ.get("MNISTLAB_UPDATE_FINGERPRINT"):
        record = {"config": CONFIG.to_dict(), "torch": torch.__version__, "step_losses": losses}
        FINGERPRINT.write_text(json.dumps(record, indent=2) + "\n")
        pytest.skip(f"fingerprint written to {FINGERPRINT}")
    expected = json.loads(FINGERPRINT.read_text())["step_losses"]
    moved = [
        (step, want, got)
        for step, (want, got) in enumerate(zip(expected, losses, strict=True), start=1)
        if not math.isclose(want, got, rel_tol=RELATIVE_TOLERANCE)
    ]
    assert not moved, (
        f"training numerics changed (step, committed, now: {moved[:3]}): the documented "
        f"figures below were produced by the old numerics; re-run them in this change, then "
        f"refresh the fingerprint (MNISTLAB_UPDATE_FINGERPRINT=1): " + "; ".join(FIGURES)
    )
