import torch
from torch import nn


def cba(cin, cout, k=3, pad=1, stride=1):
    return [
        nn.Conv2d(cin, cout, k, padding=pad, stride=stride, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class SpeedNet(nn.Module):
    """Downsample at once: one conv at 28x28, the rest at 14 and 7."""

    def __init__(
        self,
        width: float = 1.0,
        c1: int = 16,
        c2: int = 32,
        c3: int = 64,
        extra: int = 0,
        extra3: int = 0,
        head_pool: str = "max",
        nhwc: bool = True,
        stem: str = "pool",
    ):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (c1, c2, c3))
        if stem == "pool":
            layers = [*cba(1, c1), nn.MaxPool2d(2)]
        else:  # strided conv
            layers = cba(1, c1, stride=2)
        layers += cba(c1, c2)
        for _ in range(extra):
            layers += cba(c2, c2)
        layers += [nn.MaxPool2d(2), *cba(c2, c3)]
        for _ in range(extra3):
            layers += cba(c3, c3)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1) if head_pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, 10)
        self.nhwc = nhwc

    def forward(self, x):
        if self.nhwc and x.device.type == "cpu" and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.fc(self.pool(self.features(x)).flatten(1))
