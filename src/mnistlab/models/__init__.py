"""Tiny parameter-budget CNNs for MNIST, behind a timm-style registry.

Every model maps [B, 1, 28, 28] floats to [B, 10] logits (no softmax). Build one by name::

    from mnistlab.models import create_model, list_models
    model = create_model("tiny", activation="silu", width=0.75)

Importing this package registers every family (one file each); nothing here depends on the
engine, experiments or reports packages.
"""

from mnistlab.models import (  # noqa: F401  (register)
    compact,
    playground,
    sepnet,
    sevenconv,
    speed,
    staged,
    tiny,
    vgg3,
)
from mnistlab.models.blocks import (
    ACTIVATIONS,
    ConvNormAct,
    GapLinearHead,
    SeparableConvNormAct,
    count_params,
    make_activation,
    scale_channels,
)
from mnistlab.models.budget import BudgetFit, fit_to_budget
from mnistlab.models.compact import CompactMNISTNet
from mnistlab.models.playground import PlaygroundNet, SeparableNet
from mnistlab.models.registry import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    model_names,
    model_options,
    register_model,
)
from mnistlab.models.sevenconv import SevenConvNet
from mnistlab.models.speed import SpeedNet
from mnistlab.models.staged import StagedCNN
from mnistlab.models.tiny import TinyMNISTNet

__all__ = [
    "BudgetFit",
    "fit_to_budget",
    "ACTIVATIONS",
    "CompactMNISTNet",
    "ConvNormAct",
    "GapLinearHead",
    "ModelInfo",
    "PlaygroundNet",
    "SeparableConvNormAct",
    "SeparableNet",
    "SevenConvNet",
    "SpeedNet",
    "StagedCNN",
    "TinyMNISTNet",
    "count_params",
    "create_model",
    "list_models",
    "make_activation",
    "model_info",
    "model_names",
    "model_options",
    "register_model",
    "scale_channels",
]
