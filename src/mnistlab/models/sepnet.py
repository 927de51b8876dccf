"""SepNet: one full 3×3 conv stem, then depthwise-separable 3×3 blocks at 28, 14 and 7, GAP + FC.

    conv(1→c1) sep(c1→c2) @28 | pool | sep(c2→c2)×n14 @14 | pool | sep(c2→c3) sep(c3→c3)×(n7-1) @7
    | GAP → FC

Not a seed model: for budgets of 1k-4k params. A depthwise-separable 3×3 block costs 9·c_in +
c_in·c_out weights instead of 9·c_in·c_out, so under 2k params it keeps 6|12|19 channels where seed
004's full convs keep 4-7 (`mnistlab fit --model s004 --max-params 2000`). The one full conv
stays in front, where there is a single input channel to mix; only one block runs at 28×28.
On the CPU an epoch takes ~1.6× seed 004's at the same budget (docs/accuracy.md).
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
    SeparableConvNormAct,
    channels_last_for_cpu_training,
    check_common_options,
    pool_then_dropout,
    scale_channels,
)
from mnistlab.models.registry import register_model


@register_model(
    "sepnet",
    seed="own",
    description="SepNet: 3×3 stem, depthwise-separable blocks at 28, 14, 7 (8|16|24), GAP + FC",
)
class SepNet(nn.Module):
    """Registered as a class: its keyword-only `__init__` options are the model's options."""

    def __init__(
        self,
        *,
        c1: int = 8,
        c2: int = 16,
        c3: int = 24,
        n14: int = 2,
        n7: int = 2,
        use_bn: bool = True,
        dropout_p: float = 0.0,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        if n14 < 0 or n7 < 1:
            raise ConfigError(f"options n14 >= 0 and n7 >= 1 required, got n14={n14!r}, n7={n7!r}")
        sep = partial(SeparableConvNormAct, use_bn=use_bn, activation=activation)
        c1, c2, c3 = (scale_channels(c, width) for c in (c1, c2, c3))
        self.features = nn.Sequential(
            ConvNormAct(IN_CHANNELS, c1, 3, padding=1, use_bn=use_bn, activation=activation),
            sep(c1, c2),
            *pool_then_dropout(dropout_p),
            *(sep(c2, c2) for _ in range(n14)),
            *pool_then_dropout(dropout_p),
            sep(c2, c3),
            *(sep(c3, c3) for _ in range(n7 - 1)),
        )
        self.head = GapLinearHead(c3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channels_last_for_cpu_training(x, self)
        return self.head(self.features(x))
