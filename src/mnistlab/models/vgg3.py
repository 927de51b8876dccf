"""VGG3: three blocks of padded 3×3 convs at 28×28, 14×14 and 7×7, GAP and a linear head.

    [conv×depth at 28] pool drop | [conv×depth at 14] pool drop | [conv×depth at 7] GAP → FC

Not a seed model: the shape of the smallest public nets near 99.5% (e.g. 3,762 params with
channels 4 | 8 | 8 and three convs per block, in adilsammar/woolly-of-cv's MNIST notebooks).
Unlike seed 004's unpadded convs, padding keeps the full 28×28 map for the first block, so a
few channels see every position; the parameters go to depth rather than width. Conv biases
follow ConvNormAct's rule (none in front of BN), so the default counts 3,702.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from mnistlab.errors import ConfigError
from mnistlab.models.blocks import (
    IN_CHANNELS,
    ConvNormAct,
    GapLinearHead,
    channels_last_for_cpu_training,
    check_common_options,
    pool_then_dropout,
    scale_channels,
)
from mnistlab.models.registry import register_model


@register_model(
    "vgg3",
    seed="own",
    description="VGG3: padded 3×3 conv blocks at 28, 14, 7 (4|8|8 ×3 by default), GAP + FC",
)
class VGG3(nn.Module):
    """Registered as a class: its keyword-only `__init__` options are the model's options."""

    def __init__(
        self,
        *,
        c1: int = 4,
        c2: int = 8,
        c3: int = 8,
        depth: int = 3,
        use_bn: bool = True,
        dropout_p: float = 0.01,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        if depth < 1:
            raise ConfigError(f"option depth must be >= 1, got {depth!r}")
        unit = partial(ConvNormAct, kernel_size=3, padding=1, use_bn=use_bn, activation=activation)

        def block(in_channels: int, channels: int) -> list[nn.Module]:
            return [unit(in_channels if i == 0 else channels, channels) for i in range(depth)]

        c1, c2, c3 = (scale_channels(c, width) for c in (c1, c2, c3))
        # dropout after each pooled block, where the public net puts it (none at the head)
        self.features = nn.Sequential(
            *block(IN_CHANNELS, c1),
            *pool_then_dropout(dropout_p),
            *block(c1, c2),
            *pool_then_dropout(dropout_p),
            *block(c2, c3),
        )
        self.head = GapLinearHead(c3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channels_last_for_cpu_training(x, self)
        return self.head(self.features(x))
