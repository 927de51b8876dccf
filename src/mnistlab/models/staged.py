"""Seed 002: three-stage CNNs ("Enhanced CNN" and its baseline / residual / wide siblings).

Each stage is a 3×3 conv (padding 1) followed by two 1×1 convs, every conv with its bias *and*
BatchNorm, then the activation; a 2×2 max-pool follows stages 1 and 2 (28 → 14 → 7); the head is
GAP → Dropout → Linear(C → 10) with bias. The seed's "1→8→16→16" notation lists a stage's three
output widths: 3×3 to 8, 1×1 to 16, 1×1 to 16.

Architectures follow the seed's public repository (askmuhsin/mnist_20epoch_20kparams:
src/models/cnn.py, rescnn.py, widecnn.py, and dev/05_lightning_mnist.py for the baseline);
all four counts match the seed's table exactly:

===============  ======  ================================================================
name             params  stages (3×3, 1×1, 1×1 widths)
===============  ======  ================================================================
enhanced         19,306  (8, 16, 16) | (22, 30, 30) | (36, 46, 36), FC 36→10
s002_baseline    17,758  (8, 16, 16) | (20, 28, 28) | (36, 44, 32), FC 32→10
s002_residual    19,282  baseline + projection shortcuts into stages 2 and 3 (+532, +992)
s002_wide        19,881  (8, 16, 16) | (20, 28, 28) | (41, 49, 36), FC 36→10
===============  ======  ================================================================

The residual shortcuts are 1×1 conv (bias) → BN → act: the stage-1 output, pooled once more to
7×7, is added to the pooled stage-2 output; the stage-2 output is added to the stage-3 output.
Dropout defaults to 0.05 for all four (the seed reports it as optimal for "enhanced"; its code
default was 0.1 and the siblings' dropout is not stated).
"""

from __future__ import annotations

from functools import partial

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

StageWidths = tuple[int, int, int]

_ENHANCED: tuple[StageWidths, ...] = ((8, 16, 16), (22, 30, 30), (36, 46, 36))
_BASELINE: tuple[StageWidths, ...] = ((8, 16, 16), (20, 28, 28), (36, 44, 32))
_WIDE: tuple[StageWidths, ...] = ((8, 16, 16), (20, 28, 28), (41, 49, 36))


class Stage(nn.Sequential):
    """3×3 conv → 1×1 conv → 1×1 conv, each conv(bias) → BN → act."""

    def __init__(
        self, in_channels: int, widths: StageWidths, *, use_bn: bool, activation: str
    ) -> None:
        a, b, c = widths
        # The seed keeps conv biases in front of BN; its counts include them.
        unit = partial(ConvNormAct, use_bn=use_bn, activation=activation, bias=True)
        super().__init__(unit(in_channels, a, 3, padding=1), unit(a, b, 1), unit(b, c, 1))


class StagedCNN(nn.Module):
    def __init__(
        self,
        stages: tuple[StageWidths, ...],
        *,
        residual: bool = False,
        use_bn: bool = True,
        dropout_p: float = 0.05,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        if len(stages) != 3:
            raise ValueError("StagedCNN needs exactly three stages")
        scaled: list[StageWidths] = [
            (scale_channels(a, width), scale_channels(b, width), scale_channels(c, width))
            for a, b, c in stages
        ]
        outs = [s[2] for s in scaled]
        self.stage1 = Stage(IN_CHANNELS, scaled[0], use_bn=use_bn, activation=activation)
        self.stage2 = Stage(outs[0], scaled[1], use_bn=use_bn, activation=activation)
        self.stage3 = Stage(outs[1], scaled[2], use_bn=use_bn, activation=activation)
        self.pool = nn.MaxPool2d(2)
        self.residual = residual
        if residual:
            self.shortcut2 = ConvNormAct(
                outs[0], outs[1], 1, use_bn=use_bn, activation=activation, bias=True
            )
            self.shortcut3 = ConvNormAct(
                outs[1], outs[2], 1, use_bn=use_bn, activation=activation, bias=True
            )
        self.head = GapLinearHead(outs[2], bias=True, dropout_p=dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.pool(self.stage1(x))  # [B, C1, 14, 14]
        s2 = self.pool(self.stage2(s1))  # [B, C2, 7, 7]
        if self.residual:
            s2 = s2 + self.shortcut2(self.pool(s1))
        s3 = self.stage3(s2)  # [B, C3, 7, 7]
        if self.residual:
            s3 = s3 + self.shortcut3(s2)
        return self.head(s3)


def _create_staged(
    stages: tuple[StageWidths, ...],
    *,
    residual: bool = False,
    use_bn: bool,
    dropout_p: float,
    activation: str,
    width: float,
) -> StagedCNN:
    return StagedCNN(
        stages,
        residual=residual,
        use_bn=use_bn,
        dropout_p=dropout_p,
        activation=activation,
        width=width,
    )


@register_model(
    "enhanced", seed="002", description="Enhanced CNN: 3 stages (3×3+1×1+1×1), GAP+FC (19,306)"
)
def enhanced(
    *, use_bn: bool = True, dropout_p: float = 0.05, activation: str = "relu", width: float = 1.0
) -> StagedCNN:
    return _create_staged(
        _ENHANCED, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )


@register_model("s002_baseline", seed="002", description="Seed 002 baseline 3-stage CNN (17,758)")
def s002_baseline(
    *, use_bn: bool = True, dropout_p: float = 0.05, activation: str = "relu", width: float = 1.0
) -> StagedCNN:
    return _create_staged(
        _BASELINE, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )


@register_model(
    "s002_residual", seed="002", description="Seed 002 baseline + 1×1 projection skips (19,282)"
)
def s002_residual(
    *, use_bn: bool = True, dropout_p: float = 0.05, activation: str = "relu", width: float = 1.0
) -> StagedCNN:
    return _create_staged(
        _BASELINE,
        residual=True,
        use_bn=use_bn,
        dropout_p=dropout_p,
        activation=activation,
        width=width,
    )


@register_model("s002_wide", seed="002", description="Seed 002 wider third stage (19,881)")
def s002_wide(
    *, use_bn: bool = True, dropout_p: float = 0.05, activation: str = "relu", width: float = 1.0
) -> StagedCNN:
    return _create_staged(
        _WIDE, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )
