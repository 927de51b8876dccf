"""Fit a model family to a parameter budget by scaling its width multiplier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnistlab.errors import ConfigError
from mnistlab.models.blocks import count_params
from mnistlab.models.registry import create_model


@dataclass(frozen=True)
class BudgetFit:
    name: str
    width: float
    params: int
    options: dict[str, Any]


def fit_to_budget(name: str, max_params: int, **options: Any) -> BudgetFit:
    """The widest `name` (width on a 0.01 grid) with fewer than `max_params` parameters.

    Channel counts are rounded, so params(width) is a step function that is non-decreasing in
    width; a bisection over the grid therefore finds the largest admissible width.
    """
    options = {k: v for k, v in options.items() if k != "width"}

    def params_at(step: int) -> int:
        return count_params(create_model(name, **options, width=step / 100))

    low, high = 1, 400  # widths 0.01 .. 4.0
    if params_at(low) >= max_params:
        raise ConfigError(
            f"model {name!r} cannot fit under {max_params:,} params (smallest width has "
            f"{params_at(low):,})"
        )
    if params_at(high) < max_params:
        low = high
    while low < high:
        middle = (low + high + 1) // 2
        if params_at(middle) < max_params:
            low = middle
        else:
            high = middle - 1
    width = low / 100
    return BudgetFit(name, width, params_at(low), {**options, "width": width})
