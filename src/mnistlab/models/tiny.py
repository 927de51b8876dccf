"""Seed 000: TinyMNISTNet — six 3×3 convs, two pools, 1×1 classifier conv, then GAP.

    1→8→12 | pool | 12→16→16 | pool | 16→24→32 | conv1×1 32→10 | GAP → logits [B, 10]

Parameter counts (exact, asserted in tests):

* use_bn=True (default): 15,882. The 3×3 convs drop their bias because BN follows; each BN adds
  2·C affine parameters: 15,774 − 108 (biases) + 216 (BN) = 15,882.
* use_bn=False: 15,774, the seed's layer table (80, 876, 1,744, 2,320, 3,480, 6,944, 330).

The classifier conv always keeps its bias (no BN after it). Dropout (plain, p=dropout_p) follows
every activation, as in the seed's model; dropout_p=0 removes it. Checked against a public copy
of the seed's models/model.py (the code index did not name its repository).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistlab.models.blocks import (
    IN_CHANNELS,
    NUM_CLASSES,
    ConvNormAct,
    channels_last_for_cpu_training,
    check_common_options,
    scale_channels,
)
from mnistlab.models.registry import register_model

# Two convs per stage; a 2×2 max-pool after the first two stages (28 → 14 → 7).
_STAGES: tuple[tuple[int, int], ...] = ((8, 12), (16, 16), (24, 32))


class TinyMNISTNet(nn.Module):
    #: train on the CPU in NHWC (see `forward`); False gives the NCHW numerics of before
    cpu_channels_last: bool = True

    def __init__(
        self,
        *,
        use_bn: bool = True,
        dropout_p: float = 0.05,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        layers: list[nn.Module] = []
        in_ch = IN_CHANNELS
        for i, stage in enumerate(_STAGES):
            for out in stage:
                out_ch = scale_channels(out, width)
                layers.append(
                    ConvNormAct(
                        in_ch,
                        out_ch,
                        3,
                        padding=1,
                        use_bn=use_bn,
                        activation=activation,
                        dropout_p=dropout_p,
                    )
                )
                in_ch = out_ch
            if i < len(_STAGES) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        # 1×1 conv before GAP: the same function and count as GAP → Linear, kept as the seed has it.
        self.classifier = nn.Conv2d(in_ch, NUM_CLASSES, 1, bias=True)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cpu_channels_last:
            x = channels_last_for_cpu_training(x, self)
        return torch.flatten(self.pool(self.classifier(self.features(x))), 1)


@register_model(
    "tiny",
    seed="000",
    description="TinyMNISTNet: 6×conv3×3 (8-12-16-16-24-32), 2 pools, 1×1 conv + GAP",
)
def tiny(
    *,
    use_bn: bool = True,
    dropout_p: float = 0.05,
    activation: str = "relu",
    width: float = 1.0,
) -> TinyMNISTNet:
    return TinyMNISTNet(use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width)
