"""A config's model and data: every command builds a run's model and its splits here."""

from __future__ import annotations

from torch import nn

from mnistlab.config import TrainConfig
from mnistlab.data import MnistTensors, Splits, split_mnist
from mnistlab.models import count_params, create_model, fit_to_budget


def build_model(config: TrainConfig) -> nn.Module:
    options = dict(config.model_options)
    if config.max_params > 0:
        options = fit_to_budget(config.model, config.max_params, **options).options
    return create_model(config.model, model_sha256=config.model_sha256, **options)


def splits_for(config: TrainConfig, data: MnistTensors) -> Splits:
    """The config's seeded train/val split of the 60k (and the official test set)."""
    return split_mnist(
        data,
        val_size=config.val_size,
        seed=config.split_seed,
        train_subset=config.train_subset or None,
    )


__all__ = ["build_model", "count_params", "splits_for"]
