"""The inner loops: one training epoch and one evaluation pass over device-resident uint8 data."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.data import AugmentConfig, augment_batch, iterate_batches, normalize
from mnistlab.engine.optim import Schedule


@dataclass(frozen=True)
class EpochStats:
    loss: float
    acc: float  # percent


def train_one_epoch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    *,
    batch_size: int,
    generator: torch.Generator,
    augment: AugmentConfig,
    label_smoothing: float = 0.0,
    grad_clip: float = 0.0,
    after_step: Callable[[], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EpochStats:
    """Train for one pass over `images` (uint8 [N,28,28]) in shuffled batches."""
    model.train()
    # accumulate on the device: a .item() per step would force a sync every batch
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    seen = 0
    for batch_images, batch_labels in iterate_batches(
        images, labels, batch_size, shuffle=True, generator=generator
    ):
        inputs = normalize(batch_images)
        if augment.enabled:
            inputs = augment_batch(inputs, augment, generator)
        logits = model(inputs)
        loss = F.cross_entropy(logits, batch_labels, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        schedule.after_batch()
        if after_step is not None:
            after_step()
        count = batch_labels.shape[0]
        loss_sum += loss.detach() * count
        correct += (logits.detach().argmax(1) == batch_labels).sum()
        seen += count
        if on_batch is not None:
            on_batch(count)
    return EpochStats(loss=float(loss_sum) / seen, acc=100.0 * int(correct) / seen)


def rotate(inputs: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a normalized batch by a fixed angle; the border is filled with background."""
    background = inputs.amin()
    theta_rad = math.radians(degrees)
    cos, sin = math.cos(theta_rad), math.sin(theta_rad)
    theta = inputs.new_tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(inputs.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(inputs.shape), align_corners=False)
    shifted = inputs - background
    return F.grid_sample(shifted, grid, align_corners=False) + background


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 2048,
    tta_angles: Sequence[float] = (),
) -> torch.Tensor:
    """Log-probabilities [N,10]; with TTA, the log of the mean probability over rotated copies.

    Computed in log space (log_softmax, logsumexp): log(softmax) is -inf for a class whose
    logit trails by more than ~104 (float32), which gave a confident, healthy model an infinite
    val loss and had it stopped as diverged."""
    model.eval()
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        inputs = normalize(images[start : start + batch_size])
        log_probs = F.log_softmax(model(inputs).float(), dim=1)
        if tta_angles:
            views = [log_probs] + [
                F.log_softmax(model(rotate(inputs, angle)).float(), dim=1) for angle in tta_angles
            ]
            log_probs = torch.logsumexp(torch.stack(views), dim=0) - math.log(len(views))
        outputs.append(log_probs)
    return torch.cat(outputs)


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 2048,
    tta_angles: Sequence[float] = (),
) -> EpochStats:
    log_probs = predict_logits(model, images, batch_size=batch_size, tta_angles=tta_angles)
    loss = F.nll_loss(log_probs, labels).item()
    acc = 100.0 * (log_probs.argmax(1) == labels).float().mean().item()
    return EpochStats(loss=loss, acc=acc)
