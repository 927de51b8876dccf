"""Trained weights shipped inside the package: use a good model without training one.

Each entry is two files in this directory:

- ``NAME.pt``: an ordinary mnistlab checkpoint (the dict `mnistlab train` writes as
  ``best.pt``: ``format``, ``config``, ``state_dict``, ``epoch``, ``val_acc``), loaded with
  ``torch.load(weights_only=True)`` like any other checkpoint;
- ``NAME.json``: where it comes from: the full training config, the epoch chosen on the
  validation split, val/test accuracy of those weights, and the ``sha256`` of ``NAME.pt``,
  checked at every load so a damaged install is reported rather than used.

Shipped now:

=========  ========  ========  =======  ========  ================================================
name       model     params    val acc  test acc  how
=========  ========  ========  =======  ========  ================================================
default    tiny      15,882    99.28%   99.43%    `mnistlab train` (the default recipe, seed 0),
                                                  12 epochs, best epoch 11 chosen on val
r20k       s004      19,971    99.53%   99.56%    recipe r20k, seed 1 of 0-4 (best val), 20 ep.
r8k        s004      7,899     99.38%   99.52%    recipe r8k, seed 4 of 0-4 (best val), 15 ep.,
                                                  TTA (val 99.36% with it)
r5k        s004      4,854     99.26%   99.32%    recipe r5k, seed 1 of 0-4 (best val), 20 ep.
r4k        sepnet    3,958     99.33%   99.42%    recipe r4k, seed 0 of 0-4 (best val), 15 ep.
r2k        sepnet    1,912     99.03%   99.20%    recipe r2k, seed 0 of 0-4 (best val), 20 ep.
r1k        sepnet    976       98.43%   98.93%    recipe r1k, seed 2 of 0-4 (best val), 30 ep.,
                                                  TTA (val 98.55% with it)
speedrun   speednet  49,818    99.30%   99.52%    recipe speedrun, seed 2 of 0-4 (best val), 6 ep.,
                                                  TTA (val 99.34% with it)
=========  ========  ========  =======  ========  ================================================

The r* entries come from one clean run of the suite `budgets` (`mnistlab grid budgets`, store
lab/budgets/clean/budgets.db, code of commit 3037b7d);
of each recipe's five seeds the one with the highest *validation* accuracy is shipped, by
``python tools/budgets_table.py --ship`` (test accuracy is never looked at to choose). Their
mean ± std over the five seeds is in docs/accuracy.md.

Use::

    from mnistlab import pretrained
    model, config = pretrained.load("default")   # eval mode, CPU
    pretrained.available()   # ['default', 'r1k', 'r20k', 'r2k', 'r4k', 'r5k', 'r8k', 'speedrun']

or ``mnistlab predict digit.png --pretrained default``. An entry is added by copying a run's
``best.pt`` here as ``NAME.pt`` with its ``NAME.json`` (see ``default.json``); both globs are in
``[tool.setuptools.package-data]``.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from mnistlab.errors import ConfigError, choices_error

if TYPE_CHECKING:  # torch is imported by load() only: listing names stays instant
    from torch import nn

    from mnistlab.config import TrainConfig

__all__ = ["available", "info", "load"]


def _files() -> Any:
    # importlib.resources works from a wheel, an editable install and a zip alike
    return resources.files(__name__)


def available() -> list[str]:
    """Names of the shipped models (each has NAME.pt and NAME.json)."""
    names = {entry.name for entry in _files().iterdir()}
    return sorted(n[:-3] for n in names if n.endswith(".pt") and n[:-3] + ".json" in names)


def _check_name(name: str) -> None:
    if name not in available():
        raise choices_error("pretrained model", name, available())


def info(name: str) -> dict[str, Any]:
    """The NAME.json record: config, chosen epoch, val/test accuracy, sha256."""
    _check_name(name)
    data: dict[str, Any] = json.loads(_files().joinpath(f"{name}.json").read_text())
    return data


def load(name: str) -> tuple[nn.Module, TrainConfig]:
    """The shipped model NAME in eval mode on the CPU, and the config it was trained with."""
    # imported here: the inference layer sits above this registry and is only needed to load
    from mnistlab.run.checkpoint import model_from_bytes

    record = info(name)
    data = _files().joinpath(f"{name}.pt").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if record.get("sha256") and digest != record["sha256"]:
        raise ConfigError(
            f"pretrained model {name!r}: {name}.pt is damaged (sha256 {digest[:12]}…, expected "
            f"{record['sha256'][:12]}…); reinstall mnistlab"
        )
    loaded = model_from_bytes(data, f"pretrained:{name}")
    return loaded.model, loaded.config
