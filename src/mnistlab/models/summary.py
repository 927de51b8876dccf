"""Model summary: a per-layer table computed from any model by one traced forward pass, and
the checklist the seed authors verify by hand (budget, BatchNorm, dropout, GAP head, receptive
field). `mnistlab summary`, `fit` and the report's model cards all use this one implementation.

Forward hooks on the leaf modules give each layer's output shape, parameters and MACs. The
receptive field is tracked per tensor, not per module, so reused modules (one MaxPool called
three times) and functional ops between modules (a residual `+`, `flatten`) are handled: a
TorchFunctionMode carries the largest receptive field of a function's inputs to its output (an
add of two branches sees as far as its wider branch), and the hooks then apply the standard
recurrence for convs and pools: rf_out = rf_in + (k_eff - 1) * jump_in, jump_out = jump_in * s.
The receptive field is the theoretical one: it may exceed the 28×28 input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnistlab.models.blocks import count_params

INPUT_SHAPE = (1, 1, 28, 28)
GLOBAL = math.inf  # receptive field of a global pool: the whole input
DENSE_HEAD_LIMIT = 1000  # a Linear with more weights than this is a "large dense head"

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# parameter-free and shape-preserving: listed rows would only repeat the row above
_SKIPPED = (nn.ReLU, nn.SiLU, nn.GELU, nn.Identity, nn.Flatten)


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int  # 0 for a module already listed (called again)
    receptive_field: float
    macs: int


@dataclass
class ModelCard:
    rows: list[LayerRow]
    params: int
    macs: int
    state_bytes: int  # parameters and buffers (BN running stats) as stored
    has_bn: bool
    dropout_ps: list[float] = field(default_factory=list)
    has_global_pool: bool = False
    largest_linear: int = 0  # weights of the largest Linear layer (0 if none)

    @property
    def params_kb(self) -> float:
        return self.params * 4 / 1024  # float32

    @property
    def state_kb(self) -> float:
        return self.state_bytes / 1024

    @property
    def gap_head(self) -> bool:
        return self.has_global_pool and self.largest_linear <= DENSE_HEAD_LIMIT


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = _pair(module.kernel_size)
        text = f"Conv2d {module.in_channels}→{module.out_channels} {k[0]}×{k[1]}"
        if _pair(module.padding) != (0, 0):
            text += f" pad {_pair(module.padding)[0]}"
        if _pair(module.stride) != (1, 1):
            text += f" stride {_pair(module.stride)[0]}"
        if module.groups > 1:
            text += " depthwise" if module.groups == module.in_channels else f" g{module.groups}"
        return text + ("" if module.bias is not None else ", no bias")
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"{type(module).__name__} {module.num_features}"
    if isinstance(module, _POOLS):
        k = _pair(module.kernel_size)
        return f"{type(module).__name__} {k[0]}×{k[1]}"
    if isinstance(module, _GLOBAL_POOLS):
        return f"{type(module).__name__} (global)"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return f"{type(module).__name__} p={module.p:g}"
    return type(module).__name__


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = _pair(module.kernel_size)
        per_output = module.in_channels // module.groups * kh * kw
        return int(output[0].numel()) * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0  # BN folds into the conv at inference; pools and activations are not MACs


def _receptive(module: nn.Module, rf: float, jump: float, output: torch.Tensor) -> tuple:
    if isinstance(module, _GLOBAL_POOLS) and output.shape[-2:] == (1, 1):
        return GLOBAL, jump
    if isinstance(module, nn.Conv2d):
        k, d, s = _pair(module.kernel_size)[0], _pair(module.dilation)[0], _pair(module.stride)[0]
        return rf + (d * (k - 1)) * jump, jump * s
    if isinstance(module, _POOLS):
        k = _pair(module.kernel_size)[0]
        s = _pair(module.stride if module.stride is not None else module.kernel_size)[0]
        return rf + (k - 1) * jump, jump * s
    return rf, jump


class _Tracker(TorchFunctionMode):
    """Receptive field and jump per tensor, carried through every torch function."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[int, tuple[float, float]] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique while tracing

    def set(self, tensor: torch.Tensor, value: tuple[float, float]) -> None:
        self.fields[id(tensor)] = value
        self.alive.append(tensor)

    def get(self, tensor: Any) -> tuple[float, float] | None:
        return self.fields.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        known = [v for v in map(self.get, _flatten([args, kwargs])) if v is not None]
        if known and isinstance(out, torch.Tensor):
            self.set(out, (max(v[0] for v in known), max(v[1] for v in known)))
        return out


def _flatten(items: Any) -> list[Any]:
    if isinstance(items, list | tuple):
        return [leaf for item in items for leaf in _flatten(item)]
    if isinstance(items, dict):
        return _flatten(list(items.values()))
    return [items]


@torch.no_grad()
def model_card(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> ModelCard:
    """Trace one forward pass of a batch of 1 on the CPU and build the per-layer table."""
    model = model.to("cpu")
    was_training = model.training
    model.eval()
    names = {id(m): name for name, m in model.named_modules()}
    rows: list[LayerRow] = []
    seen: set[int] = set()
    global_pools: list[str] = []
    tracker = _Tracker()

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        rf, jump = tracker.get(inputs[0] if inputs else None) or (1.0, 1.0)
        rf, jump = _receptive(module, rf, jump, output)
        tracker.set(output, (rf, jump))
        if isinstance(module, _POOLS + _GLOBAL_POOLS) and output.shape[-2:] == (1, 1):
            global_pools.append(names.get(id(module), "?"))
        if isinstance(module, _SKIPPED):
            return
        first = id(module) not in seen
        seen.add(id(module))
        params = sum(p.numel() for p in module.parameters(recurse=False)) if first else 0
        rows.append(
            LayerRow(
                names.get(id(module), "?"),
                _kind(module),
                tuple(output.shape[1:]),
                params,
                rf,
                _macs(module, output),
            )
        )

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    x = torch.zeros(input_shape)
    try:
        with tracker:
            tracker.set(x, (1.0, 1.0))
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    linears = [m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)]
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return ModelCard(
        rows=rows,
        params=count_params(model),
        macs=sum(r.macs for r in rows),
        state_bytes=state_bytes,
        has_bn=any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()),
        dropout_ps=[
            float(m.p)
            for m in model.modules()
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0
        ],
        has_global_pool=bool(global_pools),
        largest_linear=max(linears, default=0),
    )


def format_rf(rf: float, input_size: int = INPUT_SHAPE[-1]) -> str:
    if rf == GLOBAL:
        return f"global ({input_size}×{input_size})"
    size = int(rf)
    return f"{size}×{size}" + (" (> input)" if size > input_size else "")


def format_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def format_macs(macs: int) -> str:
    return f"{macs / 1e6:.2f} M" if macs >= 1e5 else f"{macs:,}"


#: column headers of `layer_rows`
LAYER_COLUMNS = ("#", "layer", "type", "output", "params", "receptive field", "MACs")


def layer_rows(card: ModelCard) -> list[list[str]]:
    """The per-layer table as formatted strings, one list per layer (the report and `fit`)."""
    return [
        [
            str(index),
            row.name,
            row.kind,
            format_shape(row.output_shape),
            f"{row.params:,}",
            format_rf(row.receptive_field),
            format_macs(row.macs),
        ]
        for index, row in enumerate(card.rows, start=1)
    ]


@dataclass(frozen=True)
class CheckItem:
    """One line of the checklist: `key` names the check (params, epochs, bn, dropout, gap,
    rf), `name` says it in words."""

    key: str
    name: str
    ok: bool | None
    detail: str


def head_receptive_field(card: ModelCard) -> float:
    """What the features reaching the head see: the largest receptive field short of a global
    pool (which sees everything by definition, whatever the convolutions before it saw)."""
    return max((r.receptive_field for r in card.rows if r.receptive_field != GLOBAL), default=1.0)


def checklist(
    card: ModelCard,
    *,
    max_params: int = 0,
    epochs: int = 0,
    max_epochs: int = 0,
    input_size: int = INPUT_SHAPE[-1],
) -> list[CheckItem]:
    """The seeds' hand checks on a model; budget lines only when a budget is given."""
    items = []
    if max_params:
        items.append(
            CheckItem(
                "params", f"params < {max_params:,}", card.params < max_params, f"{card.params:,}"
            )
        )
    if max_epochs:
        items.append(
            CheckItem("epochs", f"epochs ≤ {max_epochs}", 0 < epochs <= max_epochs, str(epochs))
        )
    dense = card.largest_linear
    head = f"largest Linear {dense:,} weights" if dense else "no Linear layer"
    rf = head_receptive_field(card)
    items += [
        CheckItem("bn", "BatchNorm", card.has_bn, "present" if card.has_bn else "none"),
        CheckItem(
            "dropout",
            "dropout",
            bool(card.dropout_ps),
            f"p={max(card.dropout_ps):g}" if card.dropout_ps else "none",
        ),
        CheckItem(
            "gap",
            f"GAP head (no dense > {DENSE_HEAD_LIMIT:,})",
            card.gap_head,
            ("global pool, " if card.has_global_pool else "no global pool, ") + head,
        ),
        CheckItem(
            "rf",
            f"receptive field at the head ≥ {input_size}",
            rf >= input_size,
            format_rf(rf, input_size),
        ),
    ]
    return items


def summary_record(card: ModelCard, items: list[CheckItem]) -> dict[str, Any]:
    """The summary as plain JSON values (`mnistlab summary --json`, `fit --json`)."""
    return {
        "params": card.params,
        "macs": card.macs,
        "state_kb": round(card.state_kb, 2),
        "layers": [
            {
                "layer": row.name,
                "type": row.kind,
                "output": list(row.output_shape),
                "params": row.params,
                "receptive_field": None if row.receptive_field == GLOBAL else row.receptive_field,
                "macs": row.macs,
            }
            for row in card.rows
        ],
        "checks": [{"key": i.key, "check": i.name, "ok": i.ok, "detail": i.detail} for i in items],
    }
