"""Seed 001 ("MNIST Optimization Playground"): four <8k-parameter nets, models 1, 2, 3 and 3a.

Architectures follow the seed's public repository (ganapathya/optim-nn-playground, files
model1.py, model2.py, model3.py, model3a.py), re-expressed with our blocks. The seed README
gives only "~" counts; these reproduce them exactly:

=========  ==========  =====  ================================================================
name       seed says   exact  layout
=========  ==========  =====  ================================================================
s001_m1    ~5,904      5,904  3×3 convs, no padding, no BN, no bias; 1×1 bottleneck after pool
s001_m2    ~6,056      6,056  m1 + BN (+152) after every conv, dropout 0.1, last conv padded
s001_m3    ~7,602      7,602  1→10→16→(1×1→8)→pool→12→14→14→12, all padded, BN, dropout 0.08
s001_m3a   ~4,560      4,560  depthwise-separable: stem 12, DS 20,20 | pool | 28,28 | pool | 32
=========  ==========  =====  ================================================================

Note the README's channel list for model 3 (1→10→16→12→14→14→12) omits the 1×1 transition to 8
channels before the pool; the 7,602 count needs it.

Models 1–3 use ReLU → BN ordering and convs without bias *even without BN* (as the originals
do; 5,904 requires it). Their head is GAP → bias-free 1×1 conv, written here as a bias-free
Linear (identical function and count). Model 3a uses BN → ReLU and a normal bias rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mnistlab.models.blocks import (
    IN_CHANNELS,
    ConvNormAct,
    GapLinearHead,
    SeparableConvNormAct,
    check_common_options,
    make_dropout,
    scale_channels,
)
from mnistlab.models.registry import register_model

POOL = "pool"


@dataclass(frozen=True)
class Conv:
    """One conv unit of a plain spec; `drop` scales dropout_p for this unit (0 = none)."""

    out: int
    kernel: int = 3
    padding: int = 0
    drop: float = 1.0


Spec = tuple[Conv | str, ...]

_M1: Spec = (
    Conv(8), Conv(12), Conv(12), POOL, Conv(8, kernel=1),
    Conv(12), Conv(12), Conv(12),
)  # fmt: skip
# Model 2 pads its last conv (7×7 stays 7×7 before GAP); counts are unaffected by padding.
_M2: Spec = (
    Conv(8), Conv(12), Conv(12), POOL, Conv(8, kernel=1),
    Conv(12), Conv(12), Conv(12, padding=1),
)  # fmt: skip
# Model 3: padded convs, no dropout on the 1×1 transition, a quarter of it on the last conv.
_M3: Spec = (
    Conv(10, padding=1), Conv(16, padding=1), Conv(8, kernel=1, drop=0.0), POOL,
    Conv(12, padding=1), Conv(14, padding=1), Conv(14, padding=1), Conv(12, padding=1, drop=0.25),
)  # fmt: skip


class PlaygroundNet(nn.Module):
    """A plain stack of conv → act → BN → dropout units described by a Spec, then GAP → FC."""

    def __init__(
        self,
        spec: Spec,
        *,
        use_bn: bool,
        dropout_p: float,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        layers: list[nn.Module] = []
        in_ch = IN_CHANNELS
        for item in spec:
            if item == POOL:
                layers.append(nn.MaxPool2d(2))
                continue
            assert isinstance(item, Conv)
            out_ch = scale_channels(item.out, width)
            layers.append(
                ConvNormAct(
                    in_ch,
                    out_ch,
                    item.kernel,
                    padding=item.padding,
                    use_bn=use_bn,
                    activation=activation,
                    bias=False,  # the originals never use biases; the seed counts depend on it
                    order="act_norm",
                    dropout_p=dropout_p * item.drop,
                )
            )
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.head = GapLinearHead(in_ch, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SeparableNet(nn.Module):
    """Model 3a: conv stem, then depthwise-separable blocks with two pools, GAP → FC."""

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
        c = [scale_channels(n, width) for n in (12, 20, 28, 32)]

        def ds(cin: int, cout: int) -> SeparableConvNormAct:
            return SeparableConvNormAct(cin, cout, use_bn=use_bn, activation=activation)

        self.features = nn.Sequential(
            ConvNormAct(IN_CHANNELS, c[0], 3, padding=1, use_bn=use_bn, activation=activation),
            ds(c[0], c[1]),
            ds(c[1], c[1]),
            nn.MaxPool2d(2),
            make_dropout(dropout_p),
            ds(c[1], c[2]),
            ds(c[2], c[2]),
            nn.MaxPool2d(2),
            make_dropout(dropout_p),
            ds(c[2], c[3]),
        )
        self.head = GapLinearHead(c[3], bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _create_playground(
    spec: Spec, *, use_bn: bool, dropout_p: float, activation: str, width: float
) -> PlaygroundNet:
    return PlaygroundNet(
        spec, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )


@register_model("s001_m1", seed="001", description="Model 1: plain 3×3 convs + 1×1, GAP (5,904)")
def s001_m1(
    *,
    use_bn: bool = False,
    dropout_p: float = 0.0,
    activation: str = "relu",
    width: float = 1.0,
) -> PlaygroundNet:
    return _create_playground(
        _M1, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )


@register_model("s001_m2", seed="001", description="Model 2: model 1 + BN + dropout 0.1 (6,056)")
def s001_m2(
    *,
    use_bn: bool = True,
    dropout_p: float = 0.1,
    activation: str = "relu",
    width: float = 1.0,
) -> PlaygroundNet:
    return _create_playground(
        _M2, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )


@register_model(
    "s001_m3", seed="001", description="Model 3: 10-16-(8)-12-14-14-12, ReLU→BN, GAP (7,602)"
)
def s001_m3(
    *,
    use_bn: bool = True,
    dropout_p: float = 0.08,
    activation: str = "relu",
    width: float = 1.0,
) -> PlaygroundNet:
    return _create_playground(
        _M3, use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width
    )


@register_model(
    "s001_m3a", seed="001", description="Model 3a: depthwise-separable, two pools, GAP (4,560)"
)
def s001_m3a(
    *,
    use_bn: bool = True,
    dropout_p: float = 0.05,
    activation: str = "relu",
    width: float = 1.0,
) -> SeparableNet:
    return SeparableNet(use_bn=use_bn, dropout_p=dropout_p, activation=activation, width=width)
