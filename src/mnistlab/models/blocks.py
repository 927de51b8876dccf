"""Building blocks shared by every model family.

The families differ mostly in *where* they put BatchNorm, biases and dropout, so those choices
are arguments here instead of being re-coded in each family file. The exact parameter counts the
seed projects report depend on them (e.g. a conv keeps its bias in front of BN in seeds 002 and
004, but drops it in seeds 000 and 003), so no default silently decides them for a family.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from mnistlab.errors import ConfigError, choices_error

NUM_CLASSES = 10
IN_CHANNELS = 1

#: name -> constructor; the only activations a config may name.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}

Order = Literal["norm_act", "act_norm"]


def make_activation(name: str) -> nn.Module:
    """A fresh activation module; an unknown name is a one-line ConfigError listing the choices."""
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise choices_error("activation", name, list(ACTIVATIONS)) from None


def check_activation(name: str) -> str:
    """Fail early (at model construction) on a bad activation name."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise choices_error("activation", name, list(ACTIVATIONS))
    return name


def check_dropout(p: float, option: str = "dropout_p") -> float:
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"option {option} must be in [0, 1), got {p!r}")
    return float(p)


def check_width(width: float) -> float:
    # A width of 0 or less would make every layer collapse to 1 channel; that is a typo, not a
    # model anyone means to train.
    if not width > 0.0:
        raise ConfigError(f"option width must be > 0, got {width!r}")
    return float(width)


def check_common_options(activation: str, dropout_p: float, width: float) -> None:
    """The options every family shares, checked at construction with one-line errors."""
    check_activation(activation)
    check_dropout(dropout_p)
    check_width(width)


def scale_channels(channels: int, width: float) -> int:
    """Channels after the width multiplier: round(c * width), never below 1.

    width=1.0 returns `channels` unchanged, so the seed parameter counts are reproduced exactly.
    """
    return max(1, round(channels * width))


def make_dropout(p: float, *, spatial: bool = False) -> nn.Module:
    """Dropout (Dropout2d when `spatial`), or Identity for p == 0 so the graph stays minimal."""
    if p <= 0.0:
        return nn.Identity()
    return nn.Dropout2d(p) if spatial else Dropout(p)


def pool_then_dropout(p: float) -> list[nn.Module]:
    """A 2×2 max-pool, then dropout only when p > 0: no Identity placeholder, so the
    Sequential's indices (the state-dict keys) are those of layers that do something."""
    return [nn.MaxPool2d(2), *([make_dropout(p)] if p > 0 else [])]


def dropout_keep_mask(
    shape: torch.Size,
    p: float,
    *,
    dtype: torch.dtype,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """A dropout mask (0 or 1/(1-p)) from 16 random bits per element, drawn 64 bits at a time.

    On the CPU `bernoulli_` draws one random number per element and was ~20% of a training step
    of `tiny` (torch profiler, 1 thread); one int64 draw per 4 elements makes the mask ~3x
    cheaper. The drop probability is rounded to a multiple of 1/65536. It uses torch's default
    generator, like nn.Dropout, so runs stay reproducible from their seed. `memory_format`: the
    mask's layout (the bits go to the same elements whatever it is); the activations' own, so
    multiplying by it runs over two dense tensors of one layout.
    """
    count = math.prod(shape)
    words = torch.randint(
        -(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64, device=device
    )
    bits = words.view(torch.int16)[:count].view(shape)
    keep = bits >= round(p * 65536) - 32768  # P(keep) = 1 - p for int16 uniform bits
    mask = torch.empty(shape, dtype=dtype, device=device, memory_format=memory_format)
    return mask.copy_(keep).mul_(1.0 / (1.0 - p))


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-d tensor laid out NHWC (and not also plain contiguous, e.g. C = 1)."""
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def channels_last_for_cpu_training(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """`x` copied to NHWC when `module` trains on the CPU with autograd, else `x` itself.

    In NCHW, oneDNN's backward for 8- and 12-channel convs runs a slow AVX2 kernel on
    8-channel blocks; NHWC (with the dropout masks made NHWC too) was 1.19-1.24x per step of
    `tiny` (docs/benchmarks.md). With one channel NCHW strides already count as NHWC, so the
    copy is laid out NHWC explicitly. Not without autograd (BatchNorm re-estimated for SWA): NHWC
    BatchNorm's float32 sums are ~200x less precise (a mean over 1,000 images was 5e-5 off).
    """
    if module.training and torch.is_grad_enabled() and x.device.type == "cpu":
        return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
    return x


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper random mask on the CPU; the same module on other devices.

    A subclass, so state dicts, ONNX export (eval mode: identity) and `isinstance` checks are
    those of nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        mask = dropout_keep_mask(
            x.shape, self.p, dtype=x.dtype, device=x.device, memory_format=layout
        )
        return x.mul_(mask) if self.inplace else x * mask


class ConvNormAct(nn.Sequential):
    """conv → BN → act (or conv → act → BN) → dropout, each optional.

    `bias=None` applies the usual rule: a conv has a bias only when no BN follows it (BN's shift
    makes the bias redundant). Families whose reference counts include that redundant bias pass
    `bias=True` explicitly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        padding: int = 0,
        stride: int = 1,
        groups: int = 1,
        use_bn: bool = True,
        activation: str | None = "relu",
        bias: bool | None = None,
        order: Order = "norm_act",
        dropout_p: float = 0.0,
        spatial_dropout: bool = False,
    ) -> None:
        if order not in ("norm_act", "act_norm"):
            raise ValueError(f"order must be 'norm_act' or 'act_norm', got {order!r}")
        if bias is None:
            bias = not use_bn
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=bias,
        )
        norm = nn.BatchNorm2d(out_channels) if use_bn else None
        act = make_activation(activation) if activation is not None else None
        pair = [("bn", norm), ("act", act)] if order == "norm_act" else [("act", act), ("bn", norm)]
        for key, module in pair:
            if module is not None:
                layers[key] = module
        if dropout_p > 0.0:  # no Identity placeholder: keeps state_dict / repr minimal
            layers["drop"] = make_dropout(dropout_p, spatial=spatial_dropout)
        super().__init__(layers)


class SeparableConvNormAct(nn.Module):
    """Depthwise k×k conv → pointwise 1×1 conv → BN → act (MobileNet style).

    The depthwise conv never has a bias (the pointwise conv right after it would absorb it);
    the pointwise conv follows the `bias=None` rule of ConvNormAct.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        padding: int = 1,
        use_bn: bool = True,
        activation: str = "relu",
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        self.dw = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=padding, groups=in_channels, bias=False
        )
        self.pw = ConvNormAct(
            in_channels, out_channels, 1, use_bn=use_bn, activation=activation, bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class GapLinearHead(nn.Module):
    """Global average pool → flatten → dropout → Linear(in → 10). Returns logits."""

    def __init__(
        self,
        in_channels: int,
        *,
        bias: bool = True,
        dropout_p: float = 0.0,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = make_dropout(dropout_p)
        self.fc = nn.Linear(in_channels, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (what every seed project reports as its budget)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
