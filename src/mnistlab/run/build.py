"""Turn a config's model fields into a module: every command builds a run's model here."""

from __future__ import annotations

from torch import nn

from mnistlab.config import TrainConfig
from mnistlab.models import count_params, create_model, fit_to_budget


def build_model(config: TrainConfig) -> nn.Module:
    options = dict(config.model_options)
    if config.max_params > 0:
        options = fit_to_budget(config.model, config.max_params, **options).options
    return create_model(config.model, model_sha256=config.model_sha256, **options)


__all__ = ["build_model", "count_params"]
