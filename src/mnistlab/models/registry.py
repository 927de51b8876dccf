"""The model registry: names → factories, in the style of timm.

A factory is a function taking keyword-only options, each with a default, and returning an
nn.Module. Its signature *is* the list of accepted options, so create_model can reject a typo
with a one-line error naming the accepted ones instead of a TypeError traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from mnistlab.errors import choices_error
from mnistlab.models.blocks import count_params
from mnistlab.models.reference import (
    call_factory,
    check_model,
    checked_options,
    factory_options,
    load_attribute,
    parse_reference,
)

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)


@dataclass(frozen=True)
class ModelInfo:
    """What list_models reports for one entry; `params` is the count at default options."""

    name: str
    seed: str
    description: str
    params: int


@dataclass(frozen=True)
class _Entry:
    name: str
    seed: str
    description: str
    factory: Factory
    defaults: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def _factory_defaults(name: str, fn: Factory) -> dict[str, Any]:
    """The factory's options and defaults; a malformed factory is a programming error."""
    defaults: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY or param.default is param.empty:
            raise TypeError(
                f"model factory {name!r}: option {param.name!r} needs a keyword-only default"
            )
        defaults[param.name] = param.default
    return defaults


def register_model(name: str, *, seed: str, description: str) -> Callable[[F], F]:
    """Decorator registering `fn(**options) -> nn.Module` under `name`."""

    def decorator(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = _Entry(name, seed, description, fn, _factory_defaults(name, fn))
        return fn

    return decorator


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise choices_error("model", name, list(_REGISTRY)) from None


def create_model(name: str, *, model_sha256: str = "", **options: Any) -> nn.Module:
    """Build a model from a registered name or a reference (`nets.py:Net`, `pkg.mod:make_net`).

    A bad name, unknown option or ill-typed value is a ConfigError; a reference's model is
    also checked (trainable parameters, [N, 10] output). `model_sha256`, when given, is the
    content the file must still have."""
    ref = parse_reference(name)
    if ref.kind == "registry":
        entry = _entry(name)
        defaults, required, factory = entry.defaults, (), entry.factory
    else:
        factory = load_attribute(ref, model_sha256)
        defaults, required = factory_options(factory)
    checked = checked_options(name, defaults, required, options)
    if ref.kind == "registry":
        return factory(**checked)
    model = call_factory(name, factory, checked)
    check_model(name, model)
    return model


def model_options(name: str) -> dict[str, Any]:
    """The options `name` accepts, with their defaults (a copy: safe to mutate)."""
    ref = parse_reference(name)
    if ref.kind == "registry":
        return dict(_entry(name).defaults)
    return factory_options(load_attribute(ref))[0]


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    entry = _entry(name)
    return ModelInfo(entry.name, entry.seed, entry.description, count_params(entry.factory()))


def list_models() -> list[ModelInfo]:
    """Every registered model, sorted by name, with its parameter count at default options."""
    return [model_info(name) for name in model_names()]
