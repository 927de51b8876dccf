"""Model summary: a per-layer table computed from any model by one traced forward pass, and
the checklist the seed authors verify by hand (budget, BatchNorm, dropout, GAP head, receptive
field). `mnistlab summary`, `fit` and the report's model cards all use this one implementation.

What is checked is what `forward` runs, not what `__init__` declares. A TorchFunctionMode sees
every torch call of the forward pass, modules' and functional ones alike (`F.max_pool2d`,
`x.mean((2, 3))`, `x.view`, `+`, `torch.cat`, `F.dropout`), and tracks per tensor:

- on a spatial map, which input rows and columns each unit sees: unit i of an axis sees input
  pixels [lo + i*jump, hi + i*jump]. A conv or pool (kernel k, stride s, padding p, dilation d)
  maps (lo, hi, jump) to (lo - p*jump, hi + (d*(k-1) - p)*jump, jump*s); the receptive field is
  hi - lo + 1 (the theoretical one: it may exceed the 28×28 input). Elementwise ops and
  channel concats take the union of their same-sized operands (a residual add sees as far as its
  wider branch);
- a global reduction (an adaptive pool to 1×1, a pool whose window covers the whole map, a
  mean/amax over both spatial dims, or a flatten into a dense layer) ends the map: the tensor
  then remembers the map it reduced, and "the receptive field at the head" is that map's, not
  the pool's window added once more;
- a gate: an operand broadcast over the map (a squeeze-excite `x * se`, where `se` comes from a
  global pool) rescales channels but is not counted in the main path's receptive field. The
  gate's global context is listed in the notes instead, so the checklist reports the main path.

Forward hooks on the leaf modules name the rows (output shape, own parameters, MACs); a
functional op called outside a leaf module gets a row of its own named after the `forward` it is
in. An op whose effect on the map is not understood (interpolation, cropping by indexing, a
permute) makes the field "unknown" with the reason, never a wrong number.

MACs: multiply-accumulates per image of convs (output elements × in_channels/groups × kh × kw)
and linear layers (in × out), bias adds not counted, BN/pools/activations 0 (torchinfo's
convention for these layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnistlab.models.blocks import count_params
from mnistlab.models.reference import output_kind

INPUT_SHAPE = (1, 1, 28, 28)
GLOBAL = math.inf  # kept for callers: a row after the global reduction
DENSE_HEAD_LIMIT = 1000  # a Linear with more weights than this is a "large dense head"

# parameter-free and shape-preserving: listed rows would only repeat the row above
_SKIPPED = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Identity, nn.Flatten, nn.Sigmoid, nn.Tanh)
_CONVS = {"conv2d"}
_POOLS = {"max_pool2d", "avg_pool2d", "lp_pool2d", "max_pool2d_with_indices"}
_ADAPTIVE = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"}
_REDUCTIONS = {
    "mean": "avg", "nanmean": "avg", "sum": "avg", "amax": "max", "max": "max", "amin": "min",
    "min": "min", "logsumexp": "other", "std": "other", "var": "other", "norm": "other",
}  # fmt: skip
_RESHAPES = {"view", "reshape", "flatten", "squeeze", "view_as", "reshape_as", "unflatten"}
_DROPOUTS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
             "feature_alpha_dropout"}  # fmt: skip
_UNSUPPORTED = {"interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
                "conv_transpose2d", "pixel_shuffle", "pixel_unshuffle", "grid_sample", "unfold",
                "fold", "roll", "matmul", "bmm", "einsum", "permute", "transpose", "rot90",
                "flip"}  # fmt: skip


@dataclass(frozen=True)
class Axis:
    """Along one axis of a map, unit i sees input pixels [lo + i*jump, hi + i*jump]."""

    lo: int
    hi: int
    jump: int

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Axis:
        return Axis(
            self.lo - padding * self.jump,
            self.hi + (dilation * (kernel - 1) - padding) * self.jump,
            self.jump * stride,
        )

    def span(self, index: int) -> tuple[int, int]:
        return self.lo + index * self.jump, self.hi + index * self.jump


@dataclass(frozen=True)
class Spatial:
    """A map of shape `shape` (H, W) whose units see `rows` × `cols` of the input."""

    rows: Axis
    cols: Axis
    shape: tuple[int, int]
    made_by: str = "input"  # the layer or op that last widened it

    @property
    def rf(self) -> tuple[int, int]:
        return self.rows.size, self.cols.size


@dataclass(frozen=True)
class Reduced:
    """A global reduction of the map `head`: by average or max pooling (`kind` avg / max /
    min / other) or by flattening it into a dense layer (`kind` flatten)."""

    head: Spatial
    kind: str
    how: str
    where: str


@dataclass(frozen=True)
class Flat:
    """A map with its spatial dims merged, channels kept (N, C, H*W): a mean over the last dim
    is still a GAP."""

    head: Spatial


@dataclass(frozen=True)
class Unknown:
    reason: str


Field = Spatial | Reduced | Flat | Unknown


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int  # 0 for a module already listed (called again)
    field: Field | None
    macs: int

    @property
    def receptive_field(self) -> float:
        """The row's receptive field as one number: the larger axis of a map, GLOBAL after the
        global reduction, NaN when unknown."""
        if isinstance(self.field, Spatial):
            return float(max(self.field.rf))
        if isinstance(self.field, Reduced | Flat):
            return GLOBAL
        return math.nan


@dataclass(frozen=True)
class Found:
    """A thing the checklist looks for, as found in the forward pass: what and where."""

    what: str
    where: str
    value: float = 0.0

    def text(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class ModelCard:
    rows: list[LayerRow]
    params: int
    macs: int
    state_bytes: int  # parameters and buffers (BN running stats) as stored
    output: Field | None  # what the model's output is, as traced
    batch_norms: list[Found] = field(default_factory=list)
    dropouts: list[Found] = field(default_factory=list)  # value: p (> 0 only)
    linears: list[Found] = field(default_factory=list)  # value: weights
    notes: list[str] = field(default_factory=list)
    input_size: int = INPUT_SHAPE[-1]
    output_kind: str = "logits"  # or "log-probabilities", "probabilities" (models.reference)

    @property
    def params_kb(self) -> float:
        return self.params * 4 / 1024  # float32

    @property
    def state_kb(self) -> float:
        return self.state_bytes / 1024

    @property
    def has_bn(self) -> bool:
        return bool(self.batch_norms)

    @property
    def dropout_ps(self) -> list[float]:
        return [found.value for found in self.dropouts]

    @property
    def reduction(self) -> Reduced | None:
        return self.output if isinstance(self.output, Reduced) else None

    @property
    def has_global_pool(self) -> bool:
        return self.reduction is not None and self.reduction.kind in ("avg", "max")

    @property
    def largest_linear(self) -> int:
        return int(max((found.value for found in self.linears), default=0))

    @property
    def gap_head(self) -> bool:
        return self.has_global_pool and self.largest_linear <= DENSE_HEAD_LIMIT

    @property
    def head(self) -> Spatial | Unknown:
        """The last spatial map before the global reduction (the model's output map when it
        has none)."""
        if isinstance(self.output, Reduced):
            return self.output.head
        if isinstance(self.output, Spatial | Unknown):
            return self.output
        if isinstance(self.output, Flat):
            return Unknown("the output is a flattened map that no reduction follows")
        return Unknown("the model's output is not a tensor")


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = _pair(module.kernel_size)
        text = f"Conv2d {module.in_channels}→{module.out_channels} {k[0]}×{k[1]}"
        if isinstance(module.padding, str):
            text += f" pad {module.padding}"
        elif _pair(module.padding) != (0, 0):
            text += f" pad {_pair(module.padding)[0]}"
        if _pair(module.stride) != (1, 1):
            text += f" stride {_pair(module.stride)[0]}"
        if _pair(module.dilation) != (1, 1):
            text += f" dilation {_pair(module.dilation)[0]}"
        if module.groups > 1:
            text += " depthwise" if module.groups == module.in_channels else f" g{module.groups}"
        return text + ("" if module.bias is not None else ", no bias")
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"{type(module).__name__} {module.num_features}"
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        k = _pair(module.kernel_size)
        return f"{type(module).__name__} {k[0]}×{k[1]}"
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        return f"{type(module).__name__} {module.output_size}"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return f"{type(module).__name__} p={module.p:g}"
    return type(module).__name__


_DUNDERS = {"__add__": "add", "__radd__": "add", "__iadd__": "add_", "__mul__": "mul",
            "__rmul__": "mul", "__imul__": "mul_", "__getitem__": "getitem"}  # fmt: skip


def _func_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))
    return _DUNDERS.get(name, name)


def _label(func: Any, name: str) -> str:
    """The op as a user writes it: F.max_pool2d, torch.cat, x.mean."""
    module = getattr(func, "__module__", None) or ""
    if module.startswith("torch.nn.functional") or module.startswith("torch._C._nn"):
        return f"F.{name.removesuffix('_with_indices')}"
    if module == "torch":
        return f"torch.{name}"
    return f"x.{name}"


_SIGNATURES = {
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "max_pool2d_with_indices": ("input", "kernel_size", "stride", "padding", "dilation"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    "lp_pool2d": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "adaptive_avg_pool2d": ("input", "output_size"),
    "adaptive_max_pool2d": ("input", "output_size"),
    "adaptive_max_pool2d_with_indices": ("input", "output_size"),
    "pad": ("input", "pad", "mode", "value"),
    "linear": ("input", "weight", "bias"),
    "dropout": ("input", "p", "training"),
    "batch_norm": ("input", "running_mean", "running_var", "weight", "bias"),
}
for _name in _DROPOUTS:
    _SIGNATURES.setdefault(_name, ("input", "p", "training"))


def _bind(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = dict(zip(_SIGNATURES.get(name, ()), args, strict=False))
    bound.update(kwargs)
    return bound


def _leaves(items: Any) -> list[Any]:
    if isinstance(items, list | tuple):
        return [leaf for item in items for leaf in _leaves(item)]
    if isinstance(items, dict):
        return _leaves(list(items.values()))
    return [items]


def _map_shape(tensor: torch.Tensor) -> tuple[int, int] | None:
    return (int(tensor.shape[-2]), int(tensor.shape[-1])) if tensor.dim() == 4 else None


def _spatial_dims(dims: Any, ndim: int) -> set[int] | None:
    if dims is None:
        return None
    values = [dims] if isinstance(dims, int) else list(dims)
    return {d % ndim for d in values}


def _windowed(
    source: Spatial,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    shape: tuple[int, int],
    where: str,
) -> Spatial:
    """A conv's or pool's output field; `made_by` names it only where it widens the field."""
    rows = source.rows.window(kernel[0], stride[0], padding[0], dilation[0])
    cols = source.cols.window(kernel[1], stride[1], padding[1], dilation[1])
    widened = (rows.size, cols.size) != source.rf
    return Spatial(rows, cols, shape, where if widened else source.made_by)


@dataclass
class _Frame:
    module: nn.Module
    name: str
    leaf: bool
    macs: int = 0


class _Tracer(TorchFunctionMode):
    """Fields per tensor (by id; the tensors are kept alive so ids stay unique), carried
    through every torch function; what the checklist needs is recorded on the way."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.fields: dict[int, Field] = {}
        self.alive: list[torch.Tensor] = []
        self.stack: list[_Frame] = []
        self.root = root
        self.functional_rows: list[tuple[int, LayerRow]] = []  # (order, row)
        self.order = 0
        self.counted: set[int] = set()  # parameters already given to a row
        self.batch_norms: list[Found] = []
        self.dropouts: list[Found] = []
        self.linears: list[Found] = []
        self.gates: list[str] = []
        self.unknowns: list[str] = []

    # ---------------------------------------------------------------- bookkeeping
    def set(self, tensor: Any, value: Field) -> None:
        if isinstance(tensor, torch.Tensor):
            self.fields[id(tensor)] = value
            self.alive.append(tensor)

    def get(self, tensor: Any) -> Field | None:
        return self.fields.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def where(self) -> tuple[str, bool]:
        """Who runs the current op: a leaf module's name, or the `forward` it is written in."""
        frame = self.stack[-1] if self.stack else None
        if frame is None or frame.module is self.root:
            return "`forward`", False
        if frame.leaf:
            return frame.name, True
        return f"`{frame.name}.forward`", False

    def add_macs(self, macs: int) -> None:
        if self.stack:
            self.stack[-1].macs += macs

    def new_params(self, *tensors: Any) -> int:
        total = 0
        for tensor in tensors:
            if isinstance(tensor, nn.Parameter) and id(tensor) not in self.counted:
                self.counted.add(id(tensor))
                total += tensor.numel()
        return total

    # ---------------------------------------------------------------- the mode
    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _func_name(func)
        inputs = [t for t in _leaves([args, kwargs]) if isinstance(t, torch.Tensor)]
        fielded = [t for t in inputs if self.get(t) is not None]
        if not fielded:
            return out
        outputs = [t for t in _leaves(out) if isinstance(t, torch.Tensor)]
        try:
            self.record(func, name, args, kwargs, fielded, outputs)
        except Exception as error:  # the summary must never break a user's forward
            for tensor in outputs:
                self.set(tensor, Unknown(f"{_label(func, name)}: {error}"))
        return out

    def record(
        self,
        func: Any,
        name: str,
        args: tuple,
        kwargs: dict,
        fielded: list[torch.Tensor],
        outputs: list[torch.Tensor],
    ) -> None:
        label = _label(func, name)
        where, in_leaf = self.where()
        # in a leaf module, the thing found is the module (Dropout2d), else the call (F.dropout)
        written = type(self.stack[-1].module).__name__ if in_leaf else label
        origin = where if in_leaf else f"{label} in {where}"  # what widened a map
        bound = _bind(name, args, kwargs)
        first = bound.get("input", fielded[0])
        source = self.get(first) if isinstance(first, torch.Tensor) else None
        if source is None:
            source = self.get(fielded[0])
        assert source is not None
        out = outputs[0] if outputs else None
        row_kind: str | None = None
        macs = params = 0

        if name in _CONVS and out is not None:
            weight = bound["weight"]
            kh, kw = int(weight.shape[-2]), int(weight.shape[-1])
            macs = int(out[0].numel()) * int(weight[0].numel())
            self.add_macs(macs)
            params = 0 if in_leaf else self.new_params(weight, bound.get("bias"))
            result = self.conv(source, bound, (kh, kw), out, origin)
            row_kind = f"{label} {int(weight.shape[1]) * int(bound.get('groups', 1))}→" + (
                f"{int(weight.shape[0])} {kh}×{kw}"
            )
        elif name in _POOLS and out is not None:
            result = self.pool(source, bound, name, written, where, out, origin)
            k = _pair(bound["kernel_size"])
            row_kind = f"{label} {k[0]}×{k[1]}"
        elif name in _ADAPTIVE and out is not None:
            result = self.adaptive(source, written, where, out, origin)
            row_kind = f"{label} {tuple(_map_shape(out) or ())}"
        elif name == "pad" and out is not None:
            result = self.pad(source, bound["pad"], out, label)
            row_kind = f"{label} {tuple(bound['pad'])}"
        elif name in _REDUCTIONS and out is not None:
            result, row_kind = self.reduce(source, name, label, where, first, args, kwargs, out)
        elif name in _RESHAPES and out is not None:
            result, row_kind = self.reshape(source, label, where, first, out)
        elif name == "linear" and out is not None:
            weight = bound["weight"]
            macs = int(out[0].numel()) * int(weight.shape[-1])
            self.add_macs(macs)
            params = 0 if in_leaf else self.new_params(weight, bound.get("bias"))
            shown = f"{weight.shape[1]}→{weight.shape[0]}"
            self.linears.append(Found(f"{written} {shown}", where, float(weight.numel())))
            if isinstance(source, Reduced | Unknown):
                result = source
            else:
                result = Unknown(f"{label} at {where} is applied across a map's last axis")
            row_kind = f"{label} {weight.shape[1]}→{weight.shape[0]}"
        elif name in _UNSUPPORTED:
            result = Unknown(f"{label} at {where} changes the map in a way not tracked")
        else:
            if name in _DROPOUTS:
                p = float(bound.get("p", 0.5))
                if p > 0:
                    self.dropouts.append(Found(f"{written} p={p:g}", where, p))
                row_kind = f"{label} p={p:g}"
            elif name == "batch_norm":
                self.batch_norms.append(Found(written, where))
                params = 0 if in_leaf else self.new_params(bound.get("weight"), bound.get("bias"))
            result = None  # elementwise: per output below
        for tensor in outputs:
            value = result if result is not None else self.elementwise(fielded, tensor, label,
                                                                        where)  # fmt: skip
            self.set(tensor, value)
            if isinstance(value, Unknown) and value.reason not in self.unknowns:
                self.unknowns.append(value.reason)
        if row_kind is not None and not in_leaf and out is not None:
            self.order += 1
            row = LayerRow(where, row_kind, tuple(out.shape[1:]), params, self.get(out), macs)
            self.functional_rows.append((self.order, row))

    # ---------------------------------------------------------------- per kind of op
    def conv(
        self, source: Field, bound: dict, kernel: tuple[int, int], out: torch.Tensor, where: str
    ) -> Field:
        if not isinstance(source, Spatial):
            return (
                source if isinstance(source, Reduced | Unknown) else Unknown("conv on a flat map")
            )
        stride = _pair(bound.get("stride", 1))
        dilation = _pair(bound.get("dilation", 1))
        padding = bound.get("padding", 0)
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel, strict=True))
        padding = _pair(padding)
        shape = _map_shape(out)
        assert shape is not None
        return _windowed(source, kernel, stride, padding, dilation, shape, where)

    def pool(
        self,
        source: Field,
        bound: dict,
        name: str,
        label: str,
        where: str,
        out: torch.Tensor,
        origin: str,
    ) -> Field:
        if not isinstance(source, Spatial):
            return source if isinstance(source, Reduced | Unknown) else Unknown("pool on flat map")
        kernel = _pair(bound["kernel_size"])
        stride = _pair(bound.get("stride") or kernel)
        padding = _pair(bound.get("padding", 0))
        dilation = _pair(bound.get("dilation", 1)) if name.startswith("max") else (1, 1)
        shape, in_shape = _map_shape(out), source.shape
        assert shape is not None
        covers = all(dilation[i] * (kernel[i] - 1) + 1 >= in_shape[i] + padding[i] for i in (0, 1))
        if shape == (1, 1) and covers and in_shape != (1, 1):
            kind = "max" if name.startswith("max") else "avg"
            how = f"{label} {kernel[0]}×{kernel[1]} over the whole {in_shape[0]}×{in_shape[1]} map"
            return Reduced(source, kind, how, where)
        return _windowed(source, kernel, stride, padding, dilation, shape, origin)

    def adaptive(
        self, source: Field, label: str, where: str, out: torch.Tensor, origin: str
    ) -> Field:
        if not isinstance(source, Spatial):
            return source if isinstance(source, Reduced | Unknown) else Unknown("pool on flat map")
        shape = _map_shape(out)
        assert shape is not None
        if shape == (1, 1):
            kind = "max" if "max" in label.lower() else "avg"
            return Reduced(source, kind, f"{label} to 1×1", where)
        if shape == source.shape:
            return source
        h, w = source.shape
        if h % shape[0] or w % shape[1]:
            return Unknown(
                f"{label} at {where} pools {h}×{w} to {shape[0]}×{shape[1]} in windows of "
                "unequal size"
            )
        kh, kw = h // shape[0], w // shape[1]
        return _windowed(source, (kh, kw), (kh, kw), (0, 0), (1, 1), shape, origin)

    def pad(self, source: Field, pad: Any, out: torch.Tensor, label: str) -> Field:
        if not isinstance(source, Spatial):
            return source
        values = list(pad) + [0] * (4 - len(pad))
        left, top = int(values[0]), int(values[2])
        shape = _map_shape(out)
        assert shape is not None
        rows, cols = source.rows, source.cols
        return Spatial(
            Axis(rows.lo - top * rows.jump, rows.hi - top * rows.jump, rows.jump),
            Axis(cols.lo - left * cols.jump, cols.hi - left * cols.jump, cols.jump),
            shape,
            source.made_by,
        )

    def reduce(
        self,
        source: Field,
        name: str,
        label: str,
        where: str,
        first: Any,
        args: tuple,
        kwargs: dict,
        out: torch.Tensor,
    ) -> tuple[Field | None, str | None]:
        if not isinstance(first, torch.Tensor):
            return None, None
        dims_arg = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if isinstance(dims_arg, torch.Tensor | float):  # x.max(other) or x.norm(p)
            return None, None
        dims = _spatial_dims(dims_arg, first.dim())
        kind = _REDUCTIONS[name]
        written = f"{label}({dims_arg})" if dims_arg is not None else f"{label}()"
        if isinstance(source, Spatial) and first.dim() == 4:
            spatial = {2, 3}
            if dims is None or spatial <= dims:
                return Reduced(source, kind, written, where), written
            if dims & spatial:
                reason = f"{written} at {where} reduces one spatial axis only"
                return Unknown(reason), None
            return None, None  # over channels only: the map stays (elementwise below)
        if isinstance(source, Flat) and (dims is None or (first.dim() - 1) in dims):
            return Reduced(source.head, kind, f"flattened map, {written}", where), written
        return None, None

    def reshape(
        self, source: Field, label: str, where: str, first: Any, out: torch.Tensor
    ) -> tuple[Field | None, str | None]:
        if not isinstance(source, Spatial) or not isinstance(first, torch.Tensor):
            if isinstance(source, Flat) and out.dim() == 2:
                return Reduced(source.head, "flatten", f"{label}", where), f"{label} (flatten)"
            return None, None
        if _map_shape(out) == source.shape:
            return source, None
        n, channels = int(first.shape[0]), int(first.shape[1])
        h, w = source.shape
        if h * w == 1 or out.dim() == 2:
            return Reduced(source, "flatten", label, where), f"{label} (flatten)"
        if out.dim() == 3 and tuple(out.shape) == (n, channels, h * w):
            return Flat(source), None
        return Unknown(f"{label} at {where} rearranges the {h}×{w} map"), None

    def elementwise(
        self, fielded: list[torch.Tensor], out: torch.Tensor, label: str, where: str
    ) -> Field:
        """Same-sized spatial operands: the union of what they see. An operand broadcast over
        the map (1×1, or a globally reduced tensor) is a gate: noted, not counted."""
        shape = _map_shape(out)
        spatial: list[Spatial] = []
        gates: list[Field] = []
        for tensor in fielded:
            value = self.get(tensor)
            if isinstance(value, Unknown):
                return value
            if isinstance(value, Spatial):
                if shape is not None and value.shape == shape:
                    spatial.append(value)
                elif shape is not None and value.shape == (1, 1):
                    gates.append(value)
                else:
                    size = f"{shape[0]}×{shape[1]}" if shape else f"shape {tuple(out.shape)}"
                    h, w = value.shape
                    return Unknown(f"{label} at {where} turns the {h}×{w} map into {size}")
            elif value is not None:
                gates.append(value)
        if not spatial:
            reduced = [g for g in gates if isinstance(g, Reduced)]
            if reduced:
                return max(reduced, key=lambda r: max(r.head.rf))
            flat = [g for g in gates if isinstance(g, Flat)]
            if flat:
                return flat[0]
            return gates[0]
        if gates:
            note = (
                f"{label} at {where}: a gate broadcast over the {shape[0]}×{shape[1]} map "  # type: ignore[index]
                "(e.g. squeeze-excite); its global context is not counted in the main path's "
                "receptive field"
            )
            if note not in self.gates:
                self.gates.append(note)
        united = spatial[0]
        for other in spatial[1:]:
            if (other.rows.jump, other.cols.jump) != (united.rows.jump, united.cols.jump):
                return Unknown(f"{label} at {where} joins maps of different strides")
            rows = Axis(min(united.rows.lo, other.rows.lo), max(united.rows.hi, other.rows.hi),
                        united.rows.jump)  # fmt: skip
            cols = Axis(min(united.cols.lo, other.cols.lo), max(united.cols.hi, other.cols.hi),
                        united.cols.jump)  # fmt: skip
            widest = max((united, other), key=lambda s: s.rows.size * s.cols.size)
            made_by = widest.made_by if (rows, cols) == (widest.rows, widest.cols) else where
            united = Spatial(rows, cols, united.shape, made_by)
        return united


@torch.no_grad()
def model_card(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> ModelCard:
    """Trace one forward pass of a batch of 1 on the CPU (eval mode) and build the card."""
    model = model.to("cpu")
    was_training = model.training
    model.eval()
    names = {id(m): name for name, m in model.named_modules()}
    tracer = _Tracer(model)
    module_rows: list[tuple[int, LayerRow]] = []
    listed: set[int] = set()

    def pre_hook(module: nn.Module, inputs: tuple) -> None:
        leaf = not list(module.children()) and module is not model
        tracer.stack.append(_Frame(module, names.get(id(module), "?"), leaf))

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        frame = tracer.stack.pop() if tracer.stack else None
        if frame is None or not frame.leaf or not isinstance(output, torch.Tensor):
            return
        if isinstance(module, _SKIPPED):
            return
        first = id(module) not in listed
        listed.add(id(module))
        params = 0
        if first:
            own = list(module.parameters(recurse=False))
            params = sum(p.numel() for p in own if id(p) not in tracer.counted)
            tracer.counted.update(id(p) for p in own)
        tracer.order += 1
        row = LayerRow(
            frame.name,
            _kind(module),
            tuple(output.shape[1:]),
            params,
            tracer.get(output),
            frame.macs,
        )
        module_rows.append((tracer.order, row))

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(hook))
    x = torch.zeros(input_shape)
    h, w = input_shape[-2:]
    output: Any = None
    try:
        with tracer:
            tracer.set(x, Spatial(Axis(0, 0, 1), Axis(0, 0, 1), (h, w)))
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    rows = [row for _, row in sorted(module_rows + tracer.functional_rows, key=lambda r: r[0])]
    traced = tracer.get(output) if isinstance(output, torch.Tensor) else None
    notes = list(tracer.gates) + [f"unknown: {reason}" for reason in tracer.unknowns]
    kind = output_kind(model) if isinstance(output, torch.Tensor) else "not a tensor"
    if kind == "probabilities":
        notes.append(
            "the output rows are probabilities (softmax): training refuses it; return the "
            "logits or F.log_softmax(x, dim=1)"
        )
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return ModelCard(
        rows=rows,
        params=count_params(model),
        macs=sum(r.macs for r in rows),
        state_bytes=state_bytes,
        output=traced,
        batch_norms=tracer.batch_norms,
        dropouts=tracer.dropouts,
        linears=tracer.linears,
        notes=notes,
        input_size=int(w),
        output_kind=kind,
    )


def format_field(value: Field | None, input_size: int = INPUT_SHAPE[-1]) -> str:
    """A row's receptive field: `5×5`, `global (of 16×16)` after the reduction, `unknown`."""
    if isinstance(value, Spatial):
        h, w = value.rf
        text = f"{h}×{w}"
        return text + (" (> input)" if max(h, w) > input_size else "")
    if isinstance(value, Reduced | Flat):
        h, w = value.head.rf
        return f"global (of {h}×{w})"
    return "unknown"


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
            format_field(row.field, card.input_size),
            format_macs(row.macs),
        ]
        for index, row in enumerate(card.rows, start=1)
    ]


@dataclass(frozen=True)
class CheckItem:
    """One line of the checklist: `key` names the check (params, epochs, bn, dropout, gap,
    rf), `name` says it in words; `ok` is None where it cannot be determined."""

    key: str
    name: str
    ok: bool | None
    detail: str


def _listed(found: list[Found], limit: int = 4) -> str:
    texts = [item.text() for item in found[:limit]]
    more = len(found) - limit
    return "; ".join(texts) + (f"; … {more} more" if more > 0 else "")


def _rf_item(card: ModelCard, input_size: int) -> CheckItem:
    name = f"receptive field at the head ≥ {input_size}"
    head = card.head
    if isinstance(head, Unknown):
        return CheckItem("rf", name, None, f"unknown ({head.reason})")
    h, w = head.rf
    reduced = card.reduction
    fed = ""
    if reduced is not None:
        module = not reduced.where.startswith("`")
        fed = (
            f", reduced at {reduced.where}"
            if module
            else (f", reduced by {reduced.how} in {reduced.where}")
        )
    where = f"the {head.shape[0]}×{head.shape[1]} map out of {head.made_by}{fed}"
    return CheckItem("rf", name, min(h, w) >= input_size, f"{h}×{w} ({where})")


def _gap_item(card: ModelCard) -> CheckItem:
    name = f"GAP head (no dense > {DENSE_HEAD_LIMIT:,})"
    linear = max(card.linears, key=lambda f: f.value, default=None)
    dense = (
        f"largest Linear {linear.text()} ({int(linear.value):,} weights)"
        if linear
        else ("no Linear layer")
    )
    reduced = card.reduction
    if reduced is None:
        head = card.head
        if isinstance(head, Unknown):
            return CheckItem("gap", name, None, f"unknown ({head.reason}), {dense}")
        return CheckItem("gap", name, False, f"no global pool, {dense}")
    if reduced.kind == "flatten":
        h, w = reduced.head.shape
        found = f"no global pool: the {h}×{w} map is flattened ({reduced.where}: {reduced.how})"
        return CheckItem("gap", name, False, f"{found}, {dense}")
    pooled = "global average pool" if reduced.kind == "avg" else f"global {reduced.kind} pool"
    return CheckItem(
        "gap", name, card.gap_head, f"{pooled} ({reduced.where}: {reduced.how}), {dense}"
    )


def checklist(
    card: ModelCard,
    *,
    max_params: int = 0,
    epochs: int = 0,
    max_epochs: int = 0,
    input_size: int = INPUT_SHAPE[-1],
) -> list[CheckItem]:
    """The seeds' hand checks on a model; budget lines only when a budget is given. Each line
    says where in the forward pass it found the thing."""
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
    norms = [f.where if not f.where.startswith("`") else f.text() for f in card.batch_norms]
    shown = ", ".join(norms[:6]) + (f", … {len(norms) - 6} more" if len(norms) > 6 else "")
    bn = f"{len(norms)} in forward: {shown}" if norms else "none called in forward"
    dropout = _listed(card.dropouts) if card.dropouts else "none called in forward"
    items += [
        CheckItem("bn", "BatchNorm", card.has_bn, bn),
        CheckItem("dropout", "dropout", bool(card.dropouts), dropout),
        _gap_item(card),
        _rf_item(card, input_size),
    ]
    return items


def head_receptive_field(card: ModelCard) -> float:
    """The receptive field of the map the head reduces (its larger axis); NaN when unknown."""
    head = card.head
    return math.nan if isinstance(head, Unknown) else float(max(head.rf))


def summary_record(card: ModelCard, items: list[CheckItem]) -> dict[str, Any]:
    """The summary as plain JSON values (`mnistlab summary --json`, `fit --json`)."""

    def rf(value: Field | None) -> Any:
        if isinstance(value, Spatial):
            return list(value.rf)
        if isinstance(value, Reduced | Flat):
            return "global"
        return "unknown"

    head = card.head
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
                "receptive_field": rf(row.field),
                "macs": row.macs,
            }
            for row in card.rows
        ],
        "head": (
            {"unknown": head.reason}
            if isinstance(head, Unknown)
            else {"receptive_field": list(head.rf), "map": list(head.shape), "from": head.made_by}
        ),
        "notes": card.notes,
        "checks": [{"key": i.key, "check": i.name, "ok": i.ok, "detail": i.detail} for i in items],
    }
