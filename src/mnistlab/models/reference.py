"""Model references: a registered name, a file (`nets.py:Net`) or a module (`pkg.mod:make_net`).

A reference names an `nn.Module` subclass or a function returning one. Its signature is its list
of options, as for registered models: every parameter with a default is an option that
`--model-opt KEY=VALUE` may set, checked against the default's type. Whatever can go wrong in
a user's file (missing, syntax error, import error, no such attribute, a factory that raises, a
wrong output shape, no trainable parameters) is a one-line `ConfigError`.

A file is identified by the sha256 of its bytes: a run stores it (`TrainConfig.model_sha256`)
with a copy of the source, and `load_source` refuses a file whose content changed when a hash
is expected. Loaded files are cached by (path, sha256), so an edited file is loaded afresh.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from mnistlab.errors import ConfigError, first_line

SOURCE_COPY = "model_source.py"  # a user model's source, copied into its run directory
INPUT_SHAPE = (2, 1, 28, 28)  # two images: BatchNorm in train mode needs more than one value
NUM_CLASSES = 10


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. `kind` is "registry", "file" or "module"."""

    text: str
    kind: str
    target: str  # registry name, file path or module name
    attribute: str = ""

    @property
    def path(self) -> Path:
        return Path(self.target)


def parse_reference(text: str, base_dir: Path | None = None) -> ModelRef:
    """Classify `text`; a relative file path is taken from `base_dir` (a suite's folder)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"model must be a name or a reference like nets.py:Net, got {text!r}")
    if ":" not in text:
        return ModelRef(text, "registry", text)
    target, _, attribute = text.rpartition(":")
    if not target or not attribute.isidentifier():
        raise ConfigError(
            f"model {text!r}: expected NAME, path/to/file.py:ATTRIBUTE or package.module:ATTRIBUTE"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        path = path.resolve()
        return ModelRef(f"{path}:{attribute}", "file", str(path), attribute)
    return ModelRef(text, "module", target, attribute)


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ConfigError(f"model file {path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"model file {path}: cannot read: {error.strerror}") from None


def source_of(ref: ModelRef) -> tuple[str, str]:
    """(source text, sha256) of the code a file or module reference runs; ("", "") if none."""
    if ref.kind == "file":
        data = ref.path.read_bytes() if ref.path.exists() else b""
        if not data:
            file_sha256(ref.path)  # raises the one-line error
        return data.decode("utf-8", "replace"), hashlib.sha256(data).hexdigest()
    if ref.kind == "module":
        module = _import_module(ref)
        try:
            text = inspect.getsource(module)
        except (OSError, TypeError):
            return "", ""
        return text, hashlib.sha256(text.encode()).hexdigest()
    return "", ""


_LOADED: dict[tuple[str, str], ModuleType] = {}


def _error_location(error: BaseException, path: Path) -> str:
    """`file:line` of the deepest frame inside the user's file, for one-line messages."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f"{path}:{error.lineno}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return f"{path}:{frames[-1].lineno}" if frames else str(path)


def _load_file(ref: ModelRef, expected_sha256: str = "") -> ModuleType:
    sha = file_sha256(ref.path)
    if expected_sha256 and sha != expected_sha256:
        raise ConfigError(
            f"model file {ref.path} changed since the run was configured (sha256 {sha[:12]}, "
            f"expected {expected_sha256[:12]})"
        )
    key = (str(ref.path), sha)
    if key in _LOADED:
        return _LOADED[key]
    name = f"mnistlab_user_{sha[:16]}"
    spec = importlib.util.spec_from_file_location(name, ref.path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"model file {ref.path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # registered while it runs, so dataclasses and pickling inside the file find their module
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # noqa: B036 - a user's file may raise anything, even SystemExit
        sys.modules.pop(name, None)
        if isinstance(error, KeyboardInterrupt):
            raise
        detail = error.msg if isinstance(error, SyntaxError) else str(error)
        raise ConfigError(
            f"{_error_location(error, ref.path)}: {type(error).__name__} while loading the "
            f"model file: {detail}"
        ) from None
    _LOADED[key] = module
    return module


def _import_module(ref: ModelRef) -> ModuleType:
    try:
        return importlib.import_module(ref.target)
    except ImportError as error:
        raise ConfigError(f"model {ref.text!r}: cannot import {ref.target!r}: {error}") from None
    except Exception as error:
        raise ConfigError(
            f"model {ref.text!r}: {type(error).__name__} while importing {ref.target!r}: {error}"
        ) from None


def _candidates(module: ModuleType) -> list[str]:
    """Module-level nn.Module classes and functions: what a reference may name."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        is_module_class = inspect.isclass(value) and issubclass(value, nn.Module)
        if is_module_class or inspect.isfunction(value):
            names.append(name)
    return sorted(names)


def load_attribute(ref: ModelRef, expected_sha256: str = "") -> Callable[..., Any]:
    """The class or factory a file/module reference names."""
    module = _load_file(ref, expected_sha256) if ref.kind == "file" else _import_module(ref)
    if not hasattr(module, ref.attribute):
        where = ref.path if ref.kind == "file" else ref.target
        found = ", ".join(_candidates(module)) or "none"
        raise ConfigError(
            f"model {ref.text!r}: no attribute {ref.attribute!r} in {where}; "
            f"nn.Module classes and functions there: {found}"
        )
    value = getattr(module, ref.attribute)
    if inspect.isclass(value) and issubclass(value, nn.Module):
        return value
    if callable(value) and not inspect.isclass(value):
        return value
    raise ConfigError(
        f"model {ref.text!r}: {ref.attribute} is of type {type(value).__name__}, not an nn.Module "
        "subclass or a function returning one"
    )


def definition(model: Any) -> Any:
    """The class or function that defines `model` (a class, a factory, or an instance's
    class): what its name, module and source are read from."""
    return model if inspect.isclass(model) or inspect.isfunction(model) else type(model)


def factory_options(factory: Callable[..., Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(options with defaults, required option names) from a class's or function's signature."""
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return {}, ()
    if inspect.isclass(factory):
        parameters = parameters[1:]  # self
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for param in parameters:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            continue
        if param.default is param.empty:
            required.append(param.name)
        else:
            defaults[param.name] = param.default
    return defaults, tuple(required)


def _check_type(model: str, option: str, value: Any, default: Any) -> Any:
    """Coerce/validate `value` against the type of the option's default (ints pass as floats).

    A user model's option whose default is not a plain value (None, a tuple...) is not checked."""
    expected = type(default)
    if expected not in (bool, int, float, str):
        return value
    ok: bool
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(
            f"invalid value {value!r} for option {option!r} of model {model!r} "
            f"(expected {expected.__name__})"
        )
    return value


def checked_options(
    model: str, defaults: dict[str, Any], required: tuple[str, ...], options: dict[str, Any]
) -> dict[str, Any]:
    """`options` checked against a factory's signature: no unknown key, every required one
    given, each value of its default's type (ints pass as floats). One-line errors."""
    unknown = sorted(set(options) - set(defaults) - set(required))
    if unknown:
        accepted = ", ".join(sorted([*defaults, *required])) or "(none)"
        raise ConfigError(
            f"unknown option {unknown[0]!r} for model {model!r}; accepted options: {accepted}"
        )
    missing = [key for key in required if key not in options]
    if missing:
        raise ConfigError(
            f"model {model!r}: option {missing[0]!r} has no default; give it with "
            f"--model-opt {missing[0]}=VALUE"
        )
    return {
        k: _check_type(model, k, v, defaults[k]) if k in defaults else v for k, v in options.items()
    }


def call_factory(text: str, factory: Callable[..., Any], options: dict[str, Any]) -> nn.Module:
    """Build the model, turning a raising factory or a non-module result into one line."""
    try:
        model = factory(**options)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            f"model {text!r}: building it raised {type(error).__name__}: {error}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model {text!r}: returned a {type(model).__name__}, expected an nn.Module"
        )
    return model


def check_model(text: str, model: nn.Module) -> None:
    """A usable MNIST classifier: trainable parameters, [N, 10] out for [N, 1, 28, 28] in."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"model {text!r} has no trainable parameters")
    was_training = model.training
    model.train()  # BatchNorm and dropout as in training; restored below
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            output = model(torch.zeros(INPUT_SHAPE))
    except Exception as error:
        raise ConfigError(
            f"model {text!r}: forward pass on a {list(INPUT_SHAPE)} batch raised "
            f"{type(error).__name__}: {first_line(error)}"
        ) from None
    finally:
        model.train(was_training)
    want = (INPUT_SHAPE[0], NUM_CLASSES)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != want:
        got = list(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConfigError(
            f"model {text!r}: output {got} for a {list(INPUT_SHAPE)} input; expected "
            f"[N, {NUM_CLASSES}] logits"
        )


def output_kind(model: nn.Module) -> str:
    """What a classifier's output rows are, from a forward pass in eval mode on a few seeded
    inputs: "probabilities" (non-negative, each row summing to 1: a softmax at the end),
    "log-probabilities" (each row's logsumexp 0: a log_softmax) or "logits"."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = torch.rand((4, *INPUT_SHAPE[1:]), generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            output = model(inputs.to(device)).float()
    finally:
        model.train(was_training)
    ones = torch.ones(output.shape[0], device=output.device)
    if bool((output >= 0).all()) and torch.allclose(output.sum(1), ones, atol=1e-4):
        return "probabilities"
    if bool((output <= 0).all()) and torch.allclose(output.logsumexp(1), ones - 1, atol=1e-4):
        return "log-probabilities"
    return "logits"


def check_trainable_output(text: str, model: nn.Module) -> None:
    """Refuse a model that returns probabilities: cross-entropy takes logits (or
    log-probabilities, which log_softmax leaves as they are); on probabilities the loss stays
    near log(10) and the run ends near chance without a word."""
    if output_kind(model) == "probabilities":
        raise ConfigError(
            f"model {text!r} returns probabilities (every output row is >= 0 and sums to 1, "
            "e.g. F.softmax at the end): return the logits, or F.log_softmax(x, dim=1)"
        )
