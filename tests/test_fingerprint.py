"""Numerics fingerprint: the default config's first training steps give the committed losses.

Every accuracy figure in README/docs was produced by the training numerics as they were (init,
batch order, augmentation and dropout random streams, kernels). A change that moves them — a
new random stream, a reordered draw, another kernel — changes those figures too, so this test
fails and names them: re-run them in the same change, then refresh the fingerprint with
`MNISTLAB_UPDATE_FINGERPRINT=1 pytest tests/test_fingerprint.py`.
"""

from __future__ import annotations

import dataclasses
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
    "README.md Quick-start table (lab/default-train/default-train*.txt) and the shipped default "
    "weights (tools/ship_run.py; docs/inference.md)",
    "docs/grids.md seed000 at 3 epochs and docs/report-seed000",
    "docs/accuracy.md accuracy-under-a-budget table and shipped weights (src/mnistlab/pretrained)",
    "lab/* grids, ablations, speedrun and tune studies",
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


# -- every shipped recipe ---------------------------------------------------------------------

RECIPE_FINGERPRINTS = Path(__file__).parent / "data" / "recipe_fingerprints.json"
# what each recipe's numerics produced; a moved fingerprint names these to re-run
RECIPE_FIGURES = {
    **{
        name: f"docs/accuracy.md {name} rows (mean ± std over seeds) and the shipped "
        f"src/mnistlab/pretrained/{name}.pt with its .json"
        for name in ("r20k", "r8k", "r5k", "r4k", "r2k", "r1k")
    },
    "speedrun": "docs/benchmarks.md speedrun table, docs/speedrun-curve.png and the shipped "
    "src/mnistlab/pretrained/speedrun.pt",
    "quick": "README/docs 'quick' recipe figures (lab/package/wheel-smoke.txt; the #30 note's "
    "2,000/5,000-image table)",
}


def _recipe_config(name: str) -> TrainConfig:
    """The recipe as shipped, cut to 10 steps: 2 epochs of 5 batches, the last one clean when
    the recipe switches augmentation off, no SWA (it needs more epochs); TTA, label smoothing,
    EMA and the model's width for its budget as the recipe has them."""
    from mnistlab.recipes import recipe_values

    values = recipe_values(name)
    return TrainConfig.from_dict(
        {
            **values,
            "epochs": 2,
            "train_subset": 5 * values["batch_size"],
            "val_size": 1000,
            "no_aug_last": min(values["no_aug_last"], 1),
            "swa_start": 0,
            "device": "cpu",
        }
    )


def _recipe_numerics(mnist, monkeypatch: pytest.MonkeyPatch, config: TrainConfig) -> dict:
    losses: list[float] = []
    original = F.cross_entropy

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        loss = original(*args, **kwargs)
        if loss.requires_grad:
            losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(F, "cross_entropy", recording)
    splits = split_mnist(mnist, val_size=config.val_size, seed=0, train_subset=config.train_subset)
    # 1,000 test images: the final (TTA) evaluation is not what the fingerprint is about
    splits = dataclasses.replace(
        splits, test_images=splits.test_images[:1000], test_labels=splits.test_labels[:1000]
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_run(config, splits, progress=False, log=None)
    finally:
        torch.set_num_threads(threads)
    return {"step_losses": losses, "val_loss": float(result.summary["val_loss"])}


@pytest.mark.parametrize("name", sorted(RECIPE_FIGURES))
def test_each_recipes_numerics_match_its_fingerprint(name, mnist, monkeypatch) -> None:
    config = _recipe_config(name)
    got = _recipe_numerics(mnist, monkeypatch, config)
    assert len(got["step_losses"]) == 10
    stored = json.loads(RECIPE_FINGERPRINTS.read_text()) if RECIPE_FINGERPRINTS.exists() else {}
    if os.environ.get("MNISTLAB_UPDATE_FINGERPRINT"):
        stored[name] = {"config": config.to_dict(), "torch": torch.__version__, **got}
        RECIPE_FINGERPRINTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"fingerprint of {name} written to {RECIPE_FINGERPRINTS}")
    assert name in stored, (
        f"no fingerprint for recipe {name}: run with MNISTLAB_UPDATE_FINGERPRINT=1"
    )
    want = stored[name]
    assert config.to_dict() == want["config"], (
        f"recipe {name}'s settings changed: re-run {RECIPE_FIGURES[name]}, then refresh"
    )
    pairs = [*zip(want["step_losses"], got["step_losses"], strict=True)]
    pairs.append((want["val_loss"], got["val_loss"]))
    moved = [
        (i, a, b)
        for i, (a, b) in enumerate(pairs, 1)
        if not math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE)
    ]
    assert not moved, (
        f"recipe {name}'s numerics changed (step, committed, now: {moved[:3]}; step 11 is the "
        f"final val loss): re-run {RECIPE_FIGURES[name]} in this change, then refresh the "
        "fingerprint (MNISTLAB_UPDATE_FINGERPRINT=1)"
    )
