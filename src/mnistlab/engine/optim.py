"""Optimizers and learning-rate schedules, as registries keyed by the names used in configs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from mnistlab.config import TrainConfig

OptimizerFactory = Callable[[Iterable[nn.Parameter], TrainConfig], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    # momentum 0 gives the seeds' "vanilla" gradient descent; nesterov needs momentum > 0
    "sgd": lambda params, c: torch.optim.SGD(
        params,
        lr=c.lr,
        momentum=c.momentum,
        nesterov=c.nesterov and c.momentum > 0,
        weight_decay=c.weight_decay,
    ),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),
    "rmsprop": lambda params, c: torch.optim.RMSprop(
        params,
        lr=c.lr,
        alpha=c.rms_alpha,
        momentum=c.momentum if c.momentum < 1 else 0.0,
        weight_decay=c.weight_decay,
    ),
}


def create_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS[config.optimizer](model.parameters(), config)


class Schedule:
    """One interface over per-batch (OneCycle) and per-epoch (all others) lr schedules."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
        self.optimizer = optimizer
        self.per_batch = config.scheduler == "onecycle"
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self.scheduler = SCHEDULERS[config.scheduler](optimizer, config, steps_per_epoch)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.plateau, self.scheduler = self.scheduler, None

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def after_batch(self) -> None:
        if self.per_batch and self.scheduler is not None:
            self.scheduler.step()

    def after_epoch(self, val_loss: float, val_acc: float) -> None:
        if self.plateau is not None:
            self.plateau.step(val_acc if self.plateau.mode == "max" else val_loss)
        elif not self.per_batch and self.scheduler is not None:
            self.scheduler.step()


#: below this many optimizer steps in a whole run, OneCycle's warm-up and anneal leave too few
#: steps at a useful lr: the default recipe reached 11.7% val after 16 steps (1 epoch, 2,000
#: images), 34.8% after 40 and 72.0% after 78, 95.9% after 200 (seed 0, tiny)
MIN_ONECYCLE_STEPS = 100


def short_run_advice(config: TrainConfig, steps_per_epoch: int) -> str | None:
    """One line for a run too short for its schedule to learn, saying what would work."""
    steps = config.epochs * steps_per_epoch
    if config.scheduler != "onecycle" or steps >= MIN_ONECYCLE_STEPS:
        return None
    return (
        f"note: only {steps} optimizer steps ({config.epochs} epoch(s) × {steps_per_epoch} "
        f"batches): too few for OneCycle to warm up and anneal, expect near-chance accuracy; "
        f"use at least {MIN_ONECYCLE_STEPS} steps (more images or epochs) or, for a quick look, "
        "the recipe 'quick' (--recipe quick; recipe=\"quick\" in Python)"
    )


SchedulerFactory = Callable[[torch.optim.Optimizer, TrainConfig, int], object]


def _phases(optimizer: torch.optim.Optimizer, c: TrainConfig, _: int) -> object:
    # seed 002's multi-phase schedule: a fixed lr per phase, switching at the milestone epochs
    base = c.lr

    def factor(epoch: int) -> float:
        # `epoch` counts finished epochs; milestones are the 1-based epochs where a phase starts
        phase = sum(1 for m in c.milestones if epoch + 1 >= m)
        return c.phase_lrs[phase] / base

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _onecycle(opt: torch.optim.Optimizer, c: TrainConfig, steps_per_epoch: int) -> object:
    total = c.epochs * steps_per_epoch
    if total < 2:
        return None  # one step cannot warm up and anneal: constant lr
    # OneCycleLR divides by each phase's length in steps (pct_start * total - 1, and the rest):
    # keep the warm-up end strictly inside (0, total - 1) however few steps a run has
    pct_start = min(max(c.pct_start, 1.5 / total), 1.0 - 0.5 / total)
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=c.lr,
        epochs=c.epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=pct_start,
        div_factor=c.div_factor,
        final_div_factor=c.final_div_factor,
    )


SCHEDULERS: dict[str, SchedulerFactory] = {
    "none": lambda opt, c, n: None,
    "step": lambda opt, c, n: torch.optim.lr_scheduler.StepLR(opt, c.step_size, c.gamma),
    # milestones are 1-based epochs where the decayed lr starts; MultiStepLR counts finished epochs
    "multistep": lambda opt, c, n: torch.optim.lr_scheduler.MultiStepLR(
        opt, [m - 1 for m in c.milestones], c.gamma
    ),
    "onecycle": _onecycle,
    # val_loss falls (mode min), val_acc rises (mode max)
    "plateau": lambda opt, c, n: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt,
        mode="max" if c.plateau_metric == "val_acc" else "min",
        factor=c.gamma,
        patience=c.patience,
    ),
    "cosine": lambda opt, c, n: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=c.epochs),
    "phases": _phases,
}
