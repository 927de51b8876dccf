"""A network of your own, for mnistlab: copy this file, edit the class, keep the `width` option.

    mnistlab summary examples/nets.py:Net --max-params 8000
    mnistlab fit --model examples/nets.py:make_net --max-params 8000
    mnistlab train --model examples/nets.py:Net --model-opt width=1.05

Every argument with a default is an option `--model-opt KEY=VALUE` can set; `width` is the one
`fit` and `--max-params` scale. The model takes [N, 1, 28, 28] images (normalised) and returns
[N, 10] logits. See docs/own-model.md.
"""

from torch import nn


def block(cin: int, cout: int) -> list[nn.Module]:
    """3x3 convolution (no bias: BatchNorm has one), BatchNorm, ReLU."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Net(nn.Module):
    """Two 3x3 blocks per stage, two max-pools, dropout, a global-average-pool head."""

    def __init__(self, width: float = 1.0, dropout_p: float = 0.05):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (8, 12, 16))
        self.features = nn.Sequential(
            *block(1, c1),
            *block(c1, c1),
            nn.MaxPool2d(2),  # 28 -> 14
            *block(c1, c2),
            *block(c2, c2),
            nn.MaxPool2d(2),  # 14 -> 7
            nn.Dropout(dropout_p),
            *block(c2, c3),
            *block(c3, c3),
        )
        self.head = nn.Sequential(nn.Conv2d(c3, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.head(self.features(x))


def make_net(width: float = 1.0) -> nn.Module:
    """A factory works as well as a class: `examples/nets.py:make_net`."""
    return Net(width=width)
