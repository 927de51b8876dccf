"""Models written the way users write them (issue 27), each with its values counted by hand.

Course models mix modules and functional ops: `F.max_pool2d` and `F.dropout` in `forward`,
`nn.Sequential` blocks, custom block classes (one overriding `__call__`), a GAP done as
`x.mean((2, 3))`, `AvgPool2d` over the full map or an adaptive pool, and heads that flatten into
a dense layer or return softmax probabilities. Written here for the tests; copied from no one.

Each `Expected` is counted by hand with the recurrence written beside the layers
(rf += (k - 1) * dilation * jump, jump *= stride): `rf` is the receptive field of the last
spatial map before the global reduction, `head_map` that map's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Expected:
    params: int
    rf: int | None  # None: the summary must say "unknown"
    head_map: int | None
    bn: bool
    dropout: list[float]  # the p of every dropout forward calls
    dropout_where: str = ""  # a fragment the dropout line must show
    gap: bool = False
    gap_where: str = ""  # a fragment the GAP line must show
    gates: tuple[str, ...] = ()  # submodules whose output gates the map (detached to measure)
    probabilities: bool = False
    extra: dict = field(default_factory=dict)


class FunctionalNet(nn.Module):
    """The functional style of most course notebooks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)  # 26, rf 3                      80
        self.conv2 = nn.Conv2d(8, 16, 3)  # 24, rf 5                  1,168
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)  # residual: 12, rf 6 + 2*2 = 10   2,320
        self.conv4 = nn.Conv2d(16, 32, 3)  # after pool (6, rf 12, jump 4): 4, rf 20   4,640
        self.fc = nn.Linear(32, 10)  # 330

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)  # 12, rf 6, jump 2
        x = x + F.relu(self.conv3(x))
        x = F.max_pool2d(x, 2)  # 6, rf 12, jump 4
        x = F.dropout(x, p=0.1, training=self.training)
        x = F.relu(self.conv4(x))
        x = x.mean((2, 3))
        return F.log_softmax(self.fc(x), dim=1)


class SequentialBlocksNet(nn.Module):
    """`convblockN = nn.Sequential(...)`, a 1×1 transition, AvgPool2d over the full map; a
    dropout declared but never called."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, bias=False),
                nn.ReLU(),
                nn.BatchNorm2d(cout),
                nn.Dropout(0.1),
            )

        self.convblock1 = block(1, 8)  # 26, rf 3           72 + 16
        self.convblock2 = block(8, 16)  # 24, rf 5        1,152 + 32
        self.trans = nn.Conv2d(16, 8, 1, bias=False)  # 24, rf 5   128
        self.pool1 = nn.MaxPool2d(2, 2)  # 12, rf 6, jump 2
        self.convblock3 = block(8, 16)  # 10, rf 10       1,152 + 32
        self.convblock4 = block(16, 16)  # 8, rf 14       2,304 + 32
        self.convblock5 = block(16, 16)  # 6, rf 18       2,304 + 32
        self.gap = nn.AvgPool2d(kernel_size=6)  # the whole 6×6 map: the GAP, not one more kernel
        self.convblock6 = nn.Conv2d(16, 10, 1, bias=False)  # 160
        self.unused = nn.Dropout(0.25)  # declared, never called

    def forward(self, x):
        x = self.convblock2(self.convblock1(x))
        x = self.pool1(self.trans(x))
        x = self.convblock5(self.convblock4(self.convblock3(x)))
        x = self.convblock6(self.gap(x))
        return F.log_softmax(x.view(-1, 10), dim=-1)


class ConvBN(nn.Module):
    """A block that overrides `__call__` (its hooks never run; its children's do)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def __call__(self, x):
        return F.relu(self.bn(self.conv(x)))


class CallOverrideNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = ConvBN(1, 8)  # 28, rf 3                72 + 16
        self.b2 = ConvBN(8, 16)  # rf 5                 1,152 + 32
        self.b3 = ConvBN(16, 16)  # after pool: 14, rf 6 + 4 = 10   2,304 + 32
        self.b4 = ConvBN(16, 16)  # rf 14               2,304 + 32
        self.b5 = ConvBN(16, 32)  # after pool: 7, rf 16 + 8 = 24    4,608 + 64
        self.b6 = ConvBN(32, 32)  # rf 32               9,216 + 64
        self.fc = nn.Linear(32, 10)  # 330

    def forward(self, x):
        x = F.max_pool2d(self.b2(self.b1(x)), 2)  # 14, rf 6, jump 2
        x = F.max_pool2d(self.b4(self.b3(x)), 2)  # 7, rf 16, jump 4
        x = self.b6(self.b5(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class SepConv(nn.Module):
    """Depthwise 3×3 then pointwise 1×1, then BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.pw(self.dw(x))))


class SeparableNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.sep1 = SepConv(16, 32)  # rf 5       144 + 512 + 64
        self.pool = nn.MaxPool2d(2)  # called twice
        self.sep2 = SepConv(32, 32)  # 14, rf 10  288 + 1,024 + 64
        self.sep3 = SepConv(32, 48)  # rf 14      288 + 1,536 + 96
        self.sep4 = SepConv(48, 64)  # 7, rf 24   432 + 3,072 + 128
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        x = self.pool(self.sep1(F.relu(self.stem(x))))  # 14, rf 6, jump 2
        x = self.pool(self.sep3(self.sep2(x)))  # 7, rf 16, jump 4
        return self.head(self.sep4(x))


class DilatedNet(nn.Module):
    """Dilated and strided convs; a global max pool as `x.amax`; raw logits."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3)  # 26, rf 3                               80
        self.c2 = nn.Conv2d(8, 16, 3, dilation=2)  # 22, rf 3 + 4 = 7          1,168
        self.c3 = nn.Conv2d(16, 16, 3, dilation=4, padding=4)  # 22, rf 15     2,320
        self.c4 = nn.Conv2d(16, 16, 3, stride=2)  # 10, rf 17, jump 2          2,320
        self.c5 = nn.Conv2d(16, 32, 3, dilation=2)  # 6, rf 17 + 4*2 = 25      4,640
        self.fc = nn.Linear(32, 10)  # 330

    def forward(self, x):
        for conv in (self.c1, self.c2, self.c3, self.c4, self.c5):
            x = F.relu(conv(x))
        return self.fc(x.amax(dim=(2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)


class SENet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.se1 = SqueezeExcite(16)  # 16→4→16: 68 + 80
        self.c3 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.c4 = nn.Sequential(nn.Conv2d(16, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        self.se2 = SqueezeExcite(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.se1(self.c2(self.c1(x)))  # 28, rf 5 (not global: the gate rescales channels)
        x = F.max_pool2d(x, 2)  # 14, rf 6, jump 2
        x = self.c3(x)  # rf 10
        x = F.max_pool2d(x, 2)  # 7, rf 12, jump 4
        x = self.se2(self.c4(x))  # 5, rf 20
        x = F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1)
        return self.fc(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResidualNet(nn.Module):
    """ResNet-style blocks, a strided shortcut; a head of adaptive pool + flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)  # rf 3        72
        self.bn = nn.BatchNorm2d(8)  # 16
        self.layer1 = BasicBlock(8, 8)  # rf 7                          2 × (576 + 16)
        self.layer2 = BasicBlock(8, 16, stride=2)  # 14: rf 9, then 13, jump 2   1,184 + 2,336 + 160
        self.layer3 = BasicBlock(16, 16, stride=2)  # 7: rf 17, then 25, jump 4  2,336 + 2,336 + 288
        self.linear = nn.Linear(16, 10)  # 170

    def forward(self, x):
        out = F.relu(self.bn(self.stem(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.linear(out.view(out.size(0), -1))


class InceptionNet(nn.Module):
    """Branches of 1×1, 3×3 and 5×5 joined by `torch.cat`; GAP on 5×5 by an adaptive pool."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)  # rf 3        80
        self.b1 = nn.Conv2d(8, 8, 1)  # 72
        self.b3 = nn.Conv2d(8, 8, 3, padding=1)  # 584
        self.b5 = nn.Conv2d(
            8, 8, 5, padding=2
        )  # after pool (14, rf 4, jump 2): rf 4 + 4*2 = 12   1,608
        self.out = nn.Conv2d(24, 10, 3)  # after pool (7, rf 14, jump 4): 5, rf 22   2,170

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = torch.cat([self.b1(x), self.b3(x), self.b5(x)], dim=1)
        x = F.max_pool2d(F.relu(x), 2)
        x = self.out(x)
        return F.adaptive_avg_pool2d(x, 1).view(-1, 10)


class LeNetStyle(nn.Module):
    """Flatten into dense layers, functional dropout between them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)  # 24, rf 5                  156
        self.conv2 = nn.Conv2d(6, 16, 5)  # after pool: 8, rf 6 + 8 = 14    2,416
        self.fc1 = nn.Linear(16 * 4 * 4, 120)  # 30,840
        self.fc2 = nn.Linear(120, 84)  # 10,164
        self.fc3 = nn.Linear(84, 10)  # 850

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 12, rf 6, jump 2
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 4, rf 16, jump 4
        x = x.view(-1, 16 * 4 * 4)
        x = F.dropout(F.relu(self.fc1(x)), 0.2, training=self.training)
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class SoftmaxNet(nn.Module):
    """Returns probabilities: must be refused before training."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)  # rf 3             80
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)  # 14: rf 4 + 4 = 8   1,168
        self.conv3 = nn.Conv2d(16, 10, 1)  # 7: rf 10                 170

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14, rf 4, jump 2
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 7, rf 10, jump 4
        x = F.avg_pool2d(self.conv3(x), 7)  # over the whole 7×7 map
        return F.softmax(x.view(-1, 10), dim=-1)


class StridedNet(nn.Module):
    """Downsampling by strided convs only, in-place ReLU, `torch.mean` over [-2, -1]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),  # 14, rf 3, jump 2       160
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),  # 7, rf 3 + 2*2 = 7, jump 4   4,640
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1),  # 7, rf 7 + 2*4 = 15           9,248
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 10, 1),  # 330
        )

    def forward(self, x, return_features: bool = False):
        features = self.features(x)
        logits = torch.mean(features, dim=[-2, -1])
        return (logits, features) if return_features else logits


class SameDropNet(nn.Module):
    """`padding='same'`, a declared nn.Dropout(0.15) never called, F.dropout(0.1) used, and a
    module AvgPool2d(7) as GAP."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding="same")  # rf 3             80
        self.c2 = nn.Conv2d(8, 8, 3, padding="same")  # rf 5            584
        self.c3 = nn.Conv2d(8, 16, 3, padding="same")  # 14: rf 6 + 4 = 10   1,168
        self.c4 = nn.Conv2d(16, 16, 3, padding="same")  # rf 14        2,320
        self.pool = nn.MaxPool2d(2)
        self.c5 = nn.Conv2d(16, 16, 3, padding="same")  # 7: rf 16 + 8 = 24   2,320
        self.c6 = nn.Conv2d(16, 10, 1)  # 170
        self.gap = nn.AvgPool2d(7)
        self.drop = nn.Dropout(0.15)  # never called

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(x))))
        x = F.max_pool2d(x, kernel_size=2, stride=2)  # 14, rf 6, jump 2
        x = F.dropout(x, 0.1, self.training)
        x = self.pool(F.relu(self.c4(F.relu(self.c3(x)))))  # 7, rf 16, jump 4
        x = self.gap(self.c6(F.relu(self.c5(x))))
        return F.log_softmax(x.flatten(1), dim=1)


class InterpolateNet(nn.Module):
    """A resize the summary cannot follow: it must say "unknown", not a number."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)  # 80
        self.c2 = nn.Conv2d(8, 10, 3, padding=1)  # 730

    def forward(self, x):
        x = F.interpolate(F.relu(self.c1(x)), scale_factor=0.5, mode="bilinear")
        return self.c2(x).mean((2, 3))


CORPUS: dict[str, tuple[type[nn.Module], Expected]] = {
    "functional": (
        FunctionalNet,
        Expected(80 + 1168 + 2320 + 4640 + 330, 20, 4, False, [0.1], "`forward`: F.dropout p=0.1",
                 True, "`forward`: x.mean((2, 3))"),
    ),
    "sequential": (
        SequentialBlocksNet,
        Expected(72 + 16 + 1152 + 32 + 128 + 1152 + 32 + 2304 + 32 + 2304 + 32 + 160, 18, 6,
                 True, [0.1] * 5, "convblock1.3: Dropout p=0.1", True, "gap: AvgPool2d 6×6"),
    ),
    "call_override": (
        CallOverrideNet,
        Expected(72 + 16 + 1152 + 32 + 2 * (2304 + 32) + 4608 + 64 + 9216 + 64 + 330, 32, 7,
                 True, [], "", True, "`forward`: F.adaptive_avg_pool2d"),
    ),
    "separable": (
        SeparableNet,
        Expected(144 + 32 + (144 + 512 + 64) + (288 + 1024 + 64) + (288 + 1536 + 96)
                 + (432 + 3072 + 128) + 650, 24, 7, True, [], "", True,
                 "head.0: AdaptiveAvgPool2d"),
    ),
    "dilated": (
        DilatedNet,
        Expected(80 + 1168 + 2320 + 2320 + 4640 + 330, 25, 6, False, [], "", True,
                 "`forward`: x.amax((2, 3))", extra={"kind": "dilation 4"}),
    ),
    "squeeze_excite": (
        SENet,
        Expected(80 + 16 + 1168 + 32 + (68 + 80) + 2320 + 32 + 2320 + 32 + (68 + 80) + 170,
                 20, 5, True, [], "", True, "`forward`: F.adaptive_avg_pool2d",
                 gates=("se1.gate", "se2.gate")),
    ),
    "residual": (
        ResidualNet,
        Expected(72 + 16 + 2 * (576 + 16) + (1152 + 32 + 2304 + 32 + 128 + 32)
                 + (2304 + 32 + 2304 + 32 + 256 + 32) + 170, 25, 7, True, [], "", True,
                 "`forward`: F.adaptive_avg_pool2d"),
    ),
    "concat": (
        InceptionNet,
        Expected(80 + 72 + 584 + 1608 + 2170, 22, 5, False, [], "", True,
                 "`forward`: F.adaptive_avg_pool2d"),
    ),
    "lenet_dense": (
        LeNetStyle,
        Expected(156 + 2416 + 30840 + 10164 + 850, 16, 4, False, [0.2],
                 "`forward`: F.dropout p=0.2", False, "the 4×4 map is flattened"),
    ),
    "softmax": (
        SoftmaxNet,
        Expected(80 + 1168 + 170, 10, 7, False, [], "", True, "`forward`: F.avg_pool2d 7×7",
                 probabilities=True),
    ),
    "strided": (
        StridedNet,
        Expected(160 + 4640 + 9248 + 330, 15, 7, False, [], "", True,
                 "`forward`: torch.mean([-2, -1])"),
    ),
    "same_drop": (
        SameDropNet,
        Expected(80 + 584 + 1168 + 2320 + 2320 + 170, 24, 7, False, [0.1],
                 "`forward`: F.dropout p=0.1", True, "gap: AvgPool2d 7×7"),
    ),
    "interpolate": (
        InterpolateNet,
        Expected(80 + 730, None, None, False, [], "", False, ""),
    ),
}  # fmt: skip
