"""Fit a model to a parameter budget by scaling one numeric option (its width by default)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mnistlab.errors import ConfigError
from mnistlab.models.blocks import count_params
from mnistlab.models.reference import (
    call_factory,
    checked_options,
    definition,
    factory_options,
)
from mnistlab.models.registry import create_model, model_options

FLOAT_STEPS = (1, 400)  # a float option is searched on a 0.01 grid, 0.01 .. 4.0
INT_RANGE = (1, 4096)
INVALID = 2**63  # the count of a value the model rejects: above every budget


@dataclass(frozen=True)
class BudgetFit:
    name: str
    width: float  # the fitted option's value (named for the usual option, `width`)
    params: int
    options: dict[str, Any]
    option: str = "width"
    tried: dict[Any, int] = field(default_factory=dict, compare=False, repr=False)


def _builder(model: str | Callable[..., nn.Module]) -> tuple[str, dict[str, Any], Callable]:
    """(label, option defaults, build(options) -> module) for a name or reference, or for a
    class or factory given as an object (a notebook cell's)."""
    if isinstance(model, str):
        return model, model_options(model), lambda values: create_model(model, **values)
    if not callable(model) or isinstance(model, nn.Module):
        raise ConfigError(
            "fitting to a budget needs a model name, a reference like nets.py:Net, or an "
            f"nn.Module class or factory (to build at several widths); got {type(model).__name__}"
        )
    target = definition(model)
    label = getattr(target, "__qualname__", type(model).__name__)
    defaults, required = factory_options(model)

    def build(values: dict[str, Any]) -> nn.Module:
        return call_factory(label, model, checked_options(label, defaults, required, values))

    return label, defaults, build


def fit_to_budget(
    name: str | Callable[..., nn.Module],
    max_params: int,
    *,
    option: str | None = None,
    **options: Any,
) -> BudgetFit:
    """The largest value of a numeric option of `name` with fewer than `max_params` params.
    `name`: a registered name or reference, or a class or factory (an nn.Module subclass or a
    function returning one, e.g. defined in a notebook cell).

    `option` defaults to `width`. Channel counts are rounded, so params(value) is a step
    function, non-decreasing in the value; a bisection over the grid (0.01 steps for a float,
    1 for an int) therefore finds the largest admissible value. A model whose count does not
    grow with the option gets the largest value of the range: say so by checking `params`.
    """
    name, defaults, build = _builder(name)
    numeric = [k for k, v in defaults.items() if type(v) in (int, float)]
    if option is None:
        if "width" not in defaults:
            raise ConfigError(
                f"model {name!r} has no numeric option to scale; add one to its signature "
                "(e.g. `width: float = 1.0` multiplying its channel counts), or name one with "
                f"--option (numeric options: {', '.join(numeric) or 'none'})"
            )
        option = "width"
    if option not in numeric:
        raise ConfigError(
            f"model {name!r}: option {option!r} is not a numeric option; numeric options: "
            f"{', '.join(numeric) or 'none (add e.g. `width: float = 1.0`)'}"
        )
    is_int = type(defaults[option]) is int
    options = {k: v for k, v in options.items() if k != option}
    tried: dict[int, int] = {}

    def value_at(step: int) -> Any:
        return step if is_int else step / 100

    def params_at(step: int) -> int:
        if step not in tried:
            try:
                model = build({**options, option: value_at(step)})
                tried[step] = count_params(model)
            except ConfigError:
                tried[step] = INVALID  # e.g. a probability above 1: as good as over budget
        return tried[step]

    low, high = INT_RANGE if is_int else FLOAT_STEPS
    smallest = low
    if params_at(low) == INVALID:
        raise ConfigError(f"model {name!r}: {option} = {value_at(low)} does not build")
    if params_at(low) >= max_params:
        raise ConfigError(
            f"model {name!r} cannot fit under {max_params:,} params (smallest {option} "
            f"{value_at(low)} has {params_at(low):,})"
        )
    if params_at(high) < max_params:
        low = high
    while low < high:
        middle = (low + high + 1) // 2
        if params_at(middle) < max_params:
            low = middle
        else:
            high = middle - 1
    value = value_at(low)
    if low > smallest and params_at(low) == params_at(smallest):
        raise ConfigError(
            f"model {name!r}: option {option!r} does not change the parameter count "
            f"({params_at(low):,} at every value tried); scale an option that sets channel "
            "counts, such as `width`"
        )
    return BudgetFit(
        name,
        float(value),
        params_at(low),
        {**options, option: value},
        option,
        {value_at(k): v for k, v in tried.items()},
    )
