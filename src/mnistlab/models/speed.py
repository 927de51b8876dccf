"""SpeedNet: mnistlab's own net for time-to-accuracy on a CPU (the `speedrun` recipe).

    28 →strided conv→ 14 | conv 14×14 | pool → 7 | conv 7×7 | global max-pool → FC

Not a seed model. Most of a small net's CPU time goes to the layers at 28×28, where channels are
few and BatchNorm/ReLU/pooling are memory-bound, so the first conv already downsamples (stride
2); the width is spent at 14×14 and 7×7 instead. Measured per training epoch (55k images,
batch 128, 2 threads, random data): 4.2 s for 16-32-64 with the strided stem against 7.9-12 s
with a stride-1 conv + max-pool stem, and 6.4 s for the default 16-48-96 (49,818 params;
`python lab/speedrun/speedrun_probe.py`, raw output in lab/speedrun/speedrun-probe.txt).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from mnistlab.models.blocks import (
    IN_CHANNELS,
    NUM_CLASSES,
    ConvNormAct,
    channels_last_for_cpu_training,
    check_common_options,
    make_dropout,
    scale_channels,
)
from mnistlab.models.registry import register_model


@register_model(
    "speednet",
    seed="own",
    description="SpeedNet: strided 3×3 stem, 3×3 at 14×14, pool, 3×3 at 7×7, max-pool + FC",
)
class SpeedNet(nn.Module):
    """Registered as a class: its keyword-only `__init__` options are the model's options."""

    def __init__(
        self,
        *,
        stem: int = 16,
        mid: int = 48,
        top: int = 96,
        use_bn: bool = True,
        dropout_p: float = 0.0,
        activation: str = "relu",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_common_options(activation, dropout_p, width)
        stem, mid, top = (scale_channels(c, width) for c in (stem, mid, top))
        unit = partial(ConvNormAct, kernel_size=3, padding=1, use_bn=use_bn, activation=activation)
        self.features = nn.Sequential(
            unit(IN_CHANNELS, stem, stride=2), unit(stem, mid), nn.MaxPool2d(2), unit(mid, top)
        )
        # max rather than mean over the 7×7 map: a digit's strokes are local evidence
        self.pool = nn.AdaptiveMaxPool2d(1)
        # dropout (default off) in front of the FC, where the seeds put it; no placeholder module
        self.drop = make_dropout(dropout_p) if dropout_p > 0 else None
        self.fc = nn.Linear(top, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channels_last_for_cpu_training(x, self)
        features = torch.flatten(self.pool(self.features(x)), 1)
        return self.fc(self.drop(features) if self.drop is not None else features)
