"""Weight averaging: EMA during training and SWA over the last epochs (torch.optim.swa_utils)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from mnistlab.data import iterate_batches, normalize


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    # use_buffers: BN running statistics are averaged too, so the EMA model evaluates as-is
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_swa(model: nn.Module) -> AveragedModel:
    return AveragedModel(model)


def refresh_bn(averaged: AveragedModel, images: torch.Tensor, batch_size: int = 1024) -> None:
    """Re-estimate BatchNorm statistics of SWA weights: averaged weights invalidate the old ones."""
    batches = (
        normalize(x)
        for x, _ in iterate_batches(
            images, images.new_zeros(images.shape[0]), batch_size, shuffle=False, generator=None
        )
    )
    with torch.no_grad():
        update_bn(batches, averaged)
