"""A network of your own, for mnistlab: copy this file, edit the class, keep the `width` option.

    mnistlab summary examples/nets.py:Net --max-params 8000
    mnistlab fit --model examples/nets.py:make_net --max-params 8000
    mnistlab train --model examples/nets.py:Net --model-opt width=1.05

Every argument with a default is an option `--model-opt KEY=VALUE` can set; `width` is the one
`fit` and `--max-params` scale. The model takes [N, 1, 28, 28] images (normalised) and returns
[N, 10] logits. See docs/own-model.md.

`CourseNet` is the other common style: pools, dropout and the GAP written in `forward` with
functional ops (`mnistlab summary examples/nets.py:CourseNet` reads those as well).
"""

import torch.nn.functional as F
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


class CourseNet(nn.Module):
    """The functional style of course notebooks: modules for the weights, `F.max_pool2d`,
    `F.dropout` and the GAP (`x.mean((2, 3))`) in `forward`, log-probabilities out."""

    def __init__(self, dropout_p: float = 0.05):
        super().__init__()
        self.dropout_p = dropout_p
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv3, self.bn3 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv4, self.bn4 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv5, self.bn5 = nn.Conv2d(16, 16, 3, bias=False), nn.BatchNorm2d(16)  # 7 -> 5
        self.conv6 = nn.Conv2d(16, 10, 1)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.max_pool2d(x, 2)  # 28 -> 14
        x = F.dropout(x, self.dropout_p, self.training)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        x = F.max_pool2d(x, 2)  # 14 -> 7
        x = F.relu(self.bn5(self.conv5(x)))
        x = self.conv6(x).mean((2, 3))
        return F.log_softmax(x, dim=1)
