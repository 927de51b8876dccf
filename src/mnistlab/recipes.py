"""Named recipes: a complete training config per parameter budget (`train --recipe r8k`).

A recipe is just Python values over the defaults of `TrainConfig`; its model is scaled to the
largest width under the budget at build time (`max_params`), so the same recipe fits any
architecture given with `--model`. The suite `budgets` runs each recipe with seeds 0-4, and the
suite `ablations` removes one ingredient at a time; the measured figures are in docs/accuracy.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mnistlab.config import TrainConfig
from mnistlab.errors import choices_error


@dataclass(frozen=True)
class GoalCheck:
    """One criterion of a goal against measured runs: `value` is the runs' figure for it."""

    criterion: str  # "mean test", "worst seed", "last 3 epochs", "seconds per run"
    value: float
    target: float
    at_most: bool = False  # a ceiling (time), not a floor (accuracy)

    @property
    def met(self) -> bool:
        return self.value <= self.target if self.at_most else self.value >= self.target

    @property
    def distance(self) -> float:
        """How far from the target, positive when not met (0 when met)."""
        gap = self.value - self.target if self.at_most else self.target - self.value
        return max(gap, 0.0)

    def __str__(self) -> str:
        if math.isnan(self.value):
            return f"{self.criterion} not measured"
        if self.met:
            return f"{self.criterion} met"
        # 2 decimals, or 3 when 2 would print a gap of 0.00 for a goal missed by less
        gap = f"{self.distance:.2f}" if self.distance >= 0.005 else f"{self.distance:.3f}"
        unit = " s" if self.at_most else ""
        return f"{self.criterion} {gap}{unit} {'over' if self.at_most else 'short'}"


@dataclass(frozen=True)
class Goal:
    """What a recipe's seeds must reach, as numbers: accuracies in %, checked by `check`."""

    mean_test: float  # mean test accuracy over the seeds
    worst_seed: float | None = None  # every seed's test accuracy
    last3: float | None = None  # every seed's test accuracy in each of its last 3 epochs
    seconds: float | None = None  # at most this wall time per run
    note: str = ""

    def __str__(self) -> str:
        parts = [f"mean >= {self.mean_test:.2f}%"]
        if self.worst_seed is not None:
            parts.append(f"every seed >= {self.worst_seed:.2f}%")
        if self.last3 is not None:
            parts.append(f"every seed's last 3 epochs >= {self.last3:.2f}%")
        if self.seconds is not None:
            parts.append(f"<= {self.seconds:g} s per run")
        return ", ".join(parts) + (f" ({self.note})" if self.note else "")

    def check(
        self,
        test_accs: list[float],
        last3_min: float | None = None,
        seconds: list[float] | None = None,
    ) -> list[GoalCheck]:
        """Each criterion against the seeds' figures; one left unmeasured (no last-3 figures,
        no times) is reported as missed with its value NaN, never as met."""
        checks = [GoalCheck("mean test", sum(test_accs) / len(test_accs), self.mean_test)]
        if self.worst_seed is not None:
            checks.append(GoalCheck("worst seed", min(test_accs), self.worst_seed))
        if self.last3 is not None:
            measured = float("nan") if last3_min is None else last3_min
            checks.append(GoalCheck("last 3 epochs", measured, self.last3))
        if self.seconds is not None:
            worst = float("nan") if not seconds else max(seconds)
            checks.append(GoalCheck("seconds per run", worst, self.seconds, at_most=True))
        return checks


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    max_params: int  # the budget: params must stay below this
    max_epochs: int
    goal: Goal  # the goal for this budget, as docs/accuracy.md states it
    values: dict[str, Any]

    def config(self, **overrides: Any) -> TrainConfig:
        values = {"name": self.name, **self.values, **overrides}
        return TrainConfig.from_dict(values, source=f"recipe {self.name}")


# What the three recipes share. Seven unpadded 3x3 convs (seed 004's shape) scale well in width;
# SGD + Nesterov with OneCycle is the default recipe's optimizer; a stronger affine augmentation
# (rotation and shift) than the seeds' RandomRotation(7), switched off for the last 2 epochs so
# BatchNorm statistics and weights settle on clean digits; light label smoothing.
_SHARED: dict[str, Any] = {
    "model": "s004",
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "scheduler": "onecycle",
    "pct_start": 0.2,
    "label_smoothing": 0.05,
    "batch_size": 128,
    "rotate_deg": 10.0,
    "translate": 0.1,
    "no_aug_last": 2,
}

# What r4k, r2k and r1k share: SepNet (depthwise-separable blocks keep 6-19 channels under 2k params
# where seed 004's full convs keep 4-7) and the best trial of `mnistlab tune --space budget2k`
# (30 trials, 8 epochs each on the full training split; docs/accuracy.md), rounded: a higher
# peak lr and a shorter warm-up than the larger recipes, weight decay 2.7e-4, label smoothing
# 0.03, the shared augmentation (the trial's strength was 1.02), the last 3 epochs clean.
_SMALL: dict[str, Any] = {
    **_SHARED,
    "model": "sepnet",
    "lr": 0.2,
    "pct_start": 0.15,
    "weight_decay": 2.7e-4,
    "label_smoothing": 0.03,
    "no_aug_last": 3,
}

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "r20k",
            "s004 widened to just under 20,000 params, 20 epochs",
            max_params=20_000,
            max_epochs=20,
            goal=Goal(99.65, worst_seed=99.60, note="issue #18; first goal 99.60 / 99.55"),
            values={**_SHARED, "max_params": 20_000, "epochs": 20},
        ),
        Recipe(
            "r8k",
            "s004 narrowed to just under 8,000 params, 15 epochs, no label smoothing, the last "
            "3 epochs clean, rotation TTA; test monitored per epoch for the last-3-epochs check",
            max_params=8_000,
            max_epochs=15,
            goal=Goal(99.50, last3=99.40),
            values={
                **_SHARED,
                "max_params": 8_000,
                "epochs": 15,
                "monitor_test": True,
                # chosen before their 5-seed run (docs/accuracy.md): smoothing cost val at 8k
                # in the ablation; the old recipe's last-3 dips were all in its last augmented
                # epoch; TTA as in speedrun (its val effect here turned out nil: -0.02)
                "label_smoothing": 0.0,
                "no_aug_last": 3,
                "tta_angles": (-10.0, 10.0),
            },
        ),
        Recipe(
            "r5k",
            "s004 narrowed to just under 5,000 params, 20 epochs",
            max_params=5_000,
            max_epochs=20,
            goal=Goal(99.30),
            values={**_SHARED, "max_params": 5_000, "epochs": 20},
        ),
        *(
            Recipe(
                f"r{budget // 1000}k",
                f"SepNet scaled to just under {budget:,} params, {epochs} epochs, budget2k's tuned "
                "values",
                max_params=budget,
                max_epochs=epochs,
                goal=goal,
                values={**_SMALL, "max_params": budget, "epochs": epochs, **extra},
            )
            for budget, epochs, goal, extra in (
                (4_000, 15, Goal(99.45), {}),
                (2_000, 20, Goal(99.20), {}),
                # rotation TTA at the final evaluation: +0.11 +- 0.10 on val over r1k's first 5
                # runs, +0.01 and +0.02 (noise) at 4k and 2k (docs/accuracy.md)
                (1_000, 30, Goal(98.90), {"tta_angles": (-10.0, 10.0)}),
            )
        ),
        Recipe(
            "speedrun",
            "SpeedNet (strided stem, width at 14x14 and 7x7) in 6 epochs: time to 99.4% on "
            "2 CPU cores",
            max_params=50_000,
            max_epochs=6,
            goal=Goal(99.40, worst_seed=99.30, seconds=45, note="on 2 CPU cores"),
            values={
                **_SHARED,
                "model": "speednet",
                "max_params": 50_000,
                "epochs": 6,
                # wider BN net, short schedule: a higher peak lr and stronger smoothing
                "lr": 0.1,
                "pct_start": 0.25,
                "label_smoothing": 0.1,
                "no_aug_last": 1,
                # 55k images to train on; 5k still choose the epoch
                "val_size": 5_000,
                # 500 images per eval batch stay in cache: 6k evaluated in 0.29 s, 0.74 s at 2048
                "eval_batch_size": 500,
                # rotations averaged at the final evaluation only (val then test, once)
                "tta_angles": (-10.0, 10.0),
            },
        ),
    )
}


# Not a budget recipe: settings that learn something from a few thousand images in one epoch,
# for a first look at a model (`--recipe quick --train-subset 2000 --epochs 1`). A constant lr
# at batch 32 without augmentation: the default's OneCycle over 16 steps left tiny at chance
# (11.7% val), this gave 83.6% (2,000 images) and 91.2% (5,000), 1 epoch, seed 0.
QUICK_LOOK: dict[str, Any] = {
    "name": "quick",
    "scheduler": "none",
    "batch_size": 32,
    "rotate_deg": 0.0,
    "translate": 0.0,
    "no_aug_last": 0,
}
RECIPE_NAMES = (*RECIPES, "quick")


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise choices_error("recipe", name, list(RECIPE_NAMES)) from None


def recipe_values(name: str) -> dict[str, Any]:
    """The recipe as TrainConfig keys (name included), to be overridden by anything given."""
    if name == "quick":
        return TrainConfig.from_dict(QUICK_LOOK, source="recipe quick").to_dict()
    recipe = get_recipe(name)
    return recipe.config().to_dict()
