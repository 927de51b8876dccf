"""Seed 004: seven unpadded 3×3 convs (14-14-16 | pool | 18-20 | pool | 22-22), GAP + FC.

    28 →c1→ 26 →c2→ 24 →c3→ 22 →pool→ 11 →c4→ 9 →c5→ 7 →pool→ 3 →c6(p=1)→ 3 →c7→ 1 → GAP → FC

Every conv keeps its bias *and* is followed by BN → activation, exactly as the seed's layer table
counts them: 18,180 conv + 252 BN + 230 FC(22→10) = 18,662 (asserted in tests). The seed uses no
dropout; `dropout_p` (default 0) adds it in front of the FC, where the seed suggests it would go.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistlab.models.blocks import (
    IN_CHANNELS,
    ConvNormAct,
    GapLinearHead,
    check_common_options,
    scale_channels,
)
from mnistlab.models.registry import register_model

POOL = "pool"
# (out channels, padding) per conv; POOL marks a 2×2 max-pool.
_LAYOUT: tuple[tuple[int, int] | str, ...] = (
    (14, 0), (14, 0), (16, 0), POOL, (18, 0), (20, 0), POOL, (22, 1), (22, 0),
)  # fmt: skip


class SevenConvNet(nn.Module):
    def __init__(
        self,
        *,
        use_bn: bool = True,
        dropout_p: float = 0.0,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        layers: list[nn.Module] = []
        in_ch = IN_CHANNELS
        for item in _LAYOUT:
            if item == POOL:
                layers.append(nn.MaxPool2d(2))
                continue
            assert isinstance(item, tuple)
            out, padding = item
            out_ch = scale_channels(out, width)
            layers.append(
                ConvNormAct(
                    in_ch,
                    out_ch,
                    3,
                    padding=padding,
                    use_bn=use_bn,
                    activation=activation,
                    bias=True,  # the seed's table counts conv biases in front of BN
                )
            )
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.head = GapLinearHead(in_ch, bias=True, dropout_p=dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model(
    "s004", seed="004", description="Seven unpadded 3×3 convs + BN, 2 pools, GAP + FC (18,662)"
)
def s004(
    *, use_bn: bool = True, dropout_p: float = 0.0, activation: str = "relu", width: float = 1.0
) -> SevenConvNet:
    return SevenConvNet(use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width)
