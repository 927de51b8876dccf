"""Test-set diagnostics of a stored run: its `best.pt` evaluated on the official 10k test images.

This is evaluation only (no training): the checkpoint's own config rebuilds the model, the
weights are loaded with `weights_only=True`, and the predictions give the confusion matrix and
the misclassified digits. The accuracy recomputed here is shown beside the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnistlab.data import N_TRAIN, MnistTensors
from mnistlab.engine.loop import predict_logits
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.run.checkpoint import load_checkpoint


class DiagnosticsError(MnistlabError):
    """A run's checkpoint is missing or unreadable."""


@dataclass
class Predictions:
    labels: np.ndarray  # [10000]
    predicted: np.ndarray
    confidence: np.ndarray  # probability of the predicted class
    checkpoint_epoch: int | None

    @property
    def accuracy(self) -> float:
        return 100.0 * float((self.labels == self.predicted).mean())

    def confusion(self) -> np.ndarray:
        matrix = np.zeros((10, 10), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predicted), 1)
        return matrix

    def mistakes(self, limit: int) -> np.ndarray:
        """Indices of misclassified images, the most confident mistakes first."""
        wrong = np.flatnonzero(self.labels != self.predicted)
        order = np.argsort(-self.confidence[wrong], kind="stable")
        return wrong[order][:limit]


def resolve_run_dir(run_dir: str, store_url: str) -> Path | None:
    """A stored run directory may be relative to where the grid ran: try the likely roots."""
    if not run_dir:
        return None
    path = Path(run_dir)
    candidates = [path]
    if not path.is_absolute() and store_url.startswith("sqlite:///"):
        store_dir = Path(store_url.removeprefix("sqlite:///")).parent
        candidates += [store_dir / path, store_dir.parent / path]
    return next((c for c in candidates if c.is_dir()), None)


def predict_test(run_dir: Path, data: MnistTensors, device: torch.device) -> Predictions:
    checkpoint = run_dir / "best.pt"
    if not checkpoint.is_file():
        raise DiagnosticsError(f"{checkpoint}: no checkpoint (run directory moved or deleted?)")
    try:
        loaded = load_checkpoint(checkpoint)  # the one safe reader, with all its checks
    except ConfigError as error:
        raise DiagnosticsError(str(error)) from None
    model, config = loaded.model, loaded.config
    images = data.images[N_TRAIN:].to(device)
    labels = data.labels[N_TRAIN:]
    log_probs = predict_logits(
        model.to(device),
        images,
        batch_size=config.eval_batch_size,
        tta_angles=config.tta_angles,
    ).cpu()
    confidence, predicted = log_probs.exp().max(dim=1)
    epoch = loaded.info.get("epoch")
    return Predictions(
        labels=labels.numpy(),
        predicted=predicted.numpy(),
        confidence=confidence.numpy(),
        checkpoint_epoch=int(epoch) if isinstance(epoch, int) else None,
    )


def pick_test_images(data: MnistTensors, indices: np.ndarray) -> np.ndarray:
    return data.images[N_TRAIN:][torch.from_numpy(indices)].numpy()
