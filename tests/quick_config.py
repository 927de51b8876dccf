"""The small, fast run settings that the grid, search, report, tracking and crash tests share.

One base (tiny model, 1 epoch, 300 training and 500 validation images, no augmentation, a
constant lr, CPU); each test file states only what it changes. Importable from every test
directory: pytest puts tests/ (where the top conftest.py is) on sys.path.
"""

from __future__ import annotations

from typing import Any

import tomli_w

QUICK_BASE: dict[str, Any] = {
    "model": "tiny",
    "epochs": 1,
    "batch_size": 64,
    "train_subset": 300,
    "val_size": 500,
    "rotate_deg": 0.0,
    "translate": 0.0,
    "no_aug_last": 0,
    "scheduler": "none",
    "lr": 0.05,
    "device": "cpu",
}


def quick_base(**changes: Any) -> str:
    """The `[base]` table's lines: QUICK_BASE with `changes` (a value of None drops the key)."""
    values = {**QUICK_BASE, **changes}
    return tomli_w.dumps({key: value for key, value in values.items() if value is not None})
