"""Run configuration: one frozen dataclass of plain values, validated once, saved with results.

A config round-trips through TOML and JSON (`to_dict`/`from_dict`), and its `config_hash`
identifies a run in a store. Values TOML cannot express (None) are encoded as 0 ("off"), so a
stored config file is always complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import tomli_w

from mnistlab.errors import ConfigError, choices_error

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "multistep", "onecycle", "plateau", "cosine", "phases")
PLATEAU_METRICS = ("val_loss", "val_acc")  # plateau watches a validation figure, never test
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (not where its files go, nor the data location)."""

    name: str = "default"
    desc: str = ""
    # -- model --
    model: str = "tiny"
    model_options: dict[str, Any] = field(default_factory=dict)
    max_params: int = 0  # > 0: scale the model's width to the largest model under this budget
    # sha256 of a user model's source (file or module; "" for a registered model): pinned when
    # the config is made (`run.spec`), so a changed file is a different run and is not loaded
    model_sha256: str = ""
    # -- optimisation --
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    scheduler: str = "onecycle"
    pct_start: float = 0.2  # onecycle: fraction of steps spent warming up
    div_factor: float = 25.0  # onecycle: the lr starts at lr / div_factor
    final_div_factor: float = 1e4  # onecycle: and ends at lr / div_factor / final_div_factor
    step_size: int = 5  # step: decay every `step_size` epochs
    gamma: float = 0.1  # step/multistep/plateau decay factor
    milestones: tuple[int, ...] = ()  # multistep/phases: 1-based epochs where a new lr starts
    phase_lrs: tuple[float, ...] = ()  # phases: lr of each phase (len(milestones) + 1 values)
    patience: int = 2  # plateau: epochs without val-loss improvement before decaying
    plateau_metric: str = "val_loss"  # plateau: what it watches (val_loss down, val_acc up)
    rms_alpha: float = 0.99  # rmsprop: smoothing constant of the squared-gradient average
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max grad norm; 0 = off
    epochs: int = 12
    batch_size: int = 128
    eval_batch_size: int = 2048
    # -- augmentation (done on whole batches on the device) --
    rotate_deg: float = 8.0
    translate: float = 0.08
    scale: float = 0.0
    erase_p: float = 0.0
    erase_scale: tuple[float, ...] = (0.02, 0.15)  # erased area, as a fraction of the image
    no_aug_last: int = 1  # train the last N epochs without augmentation
    # -- weight averaging and test-time augmentation --
    ema_decay: float = 0.0  # 0 = off; else evaluate an EMA of the weights
    swa_start: int = (
        0  # 0 = off; else average weights from this epoch on (1-based), BN re-estimated
    )
    tta_angles: tuple[float, ...] = ()  # extra rotations (degrees) averaged at evaluation
    # -- protocol --
    seed: int = 0  # model init, batch order, augmentation, dropout
    split_seed: int = 0  # which 10k of the official 60k are held out for validation
    val_size: int = 10_000
    train_subset: int = 0  # 0 = the whole train split
    device: str = "auto"
    # also measure the test set after every epoch, for the report's "last 3 epochs" check only:
    # nothing is ever selected on it (the trainer picks the epoch on val)
    monitor_test: bool = False

    def __post_init__(self) -> None:
        validate(self)

    # -- serialisation --
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        return cls(**coerce(data, source=source))

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_toml(path), source=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied, validated like any other config."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def config_hash(self) -> str:
        """Stable id of what this config computes (name/desc/device change no number: excluded)."""
        data = self.to_dict()
        for key in ("name", "desc", "device", "monitor_test"):
            data.pop(key)
        for key, default in LATER_FIELDS.items():
            if data[key] == default:
                data.pop(key)  # fields added later hash as before they existed, at their default
        if not self.model_sha256:
            data.pop("model_sha256")  # registered models hash as before the field existed
        else:
            # a user file is the same computation wherever it lies: its name and content count,
            # not the folder it was checked out to
            path, _, attribute = self.model.rpartition(":")
            data["model"] = f"{Path(path).name}:{attribute}"
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: fields added after stores and shipped weights were made, with their defaults (which give the
#: behaviour from before they existed): left out of `config_hash` at those defaults
LATER_FIELDS: dict[str, Any] = {
    "div_factor": 25.0,
    "final_div_factor": 1e4,
    "plateau_metric": "val_loss",
    "rms_alpha": 0.99,
    "erase_scale": [0.02, 0.15],
}


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line ConfigError naming the file."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


_FIELD_TYPES: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    if not _FIELD_TYPES:
        _FIELD_TYPES.update(get_type_hints(TrainConfig))
    return _FIELD_TYPES


def coerce(data: dict[str, Any], *, source: str = "config") -> dict[str, Any]:
    """Check keys and types of a raw mapping (from TOML/JSON/flags) and convert lists to tuples."""
    types = _field_types()
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types:
            raise ConfigError(
                f"{source}: unknown key {key!r}; valid keys: {', '.join(sorted(types))}"
            )
        out[key] = _coerce_value(key, value, types[key], source)
    return out


def _coerce_value(key: str, value: Any, kind: Any, source: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if kind is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == tuple[int, ...]:
        if not isinstance(value, list | tuple) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            raise bad("a list of integers")
        return tuple(value)
    if kind == tuple[float, ...]:
        if not isinstance(value, list | tuple) or any(
            isinstance(v, bool) or not isinstance(v, int | float) for v in value
        ):
            raise bad("a list of numbers")
        return tuple(float(v) for v in value)
    if kind == dict[str, Any]:
        if not isinstance(value, dict):
            raise bad("a table")
        return dict(value)
    raise AssertionError(f"unhandled config type {kind} for {key}")  # a bug, not user input


def validate(config: TrainConfig) -> None:
    """Reject values that cannot run, with a one-line message naming the value."""
    if config.optimizer not in OPTIMIZERS:
        raise choices_error("optimizer", config.optimizer, OPTIMIZERS)
    if config.scheduler not in SCHEDULERS:
        raise choices_error("scheduler", config.scheduler, SCHEDULERS)
    if config.device not in DEVICES:
        raise choices_error("device", config.device, DEVICES)
    if config.plateau_metric not in PLATEAU_METRICS:
        raise choices_error("plateau_metric", config.plateau_metric, PLATEAU_METRICS)
    positive_ints = ("epochs", "batch_size", "eval_batch_size", "val_size", "step_size")
    for key in positive_ints:
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(config, key)}")
    for key in ("seed", "split_seed"):
        if not 0 <= getattr(config, key) < 2**63:  # torch's generators take a signed 64-bit int
            raise ConfigError(f"{key} must be in 0..{2**63 - 1}, got {getattr(config, key)}")
    non_negative_ints = ("train_subset", "no_aug_last", "swa_start", "patience", "max_params")
    for key in non_negative_ints:
        if getattr(config, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(config, key)}")
    floats = {
        "lr": (0.0, 1e3, False),  # beyond this the update overflows float32 (1e308: a crash)
        "momentum": (0.0, 1.0, True),
        "weight_decay": (0.0, math.inf, True),
        "pct_start": (0.0, 1.0, False),
        "div_factor": (0.0, math.inf, False),
        "final_div_factor": (0.0, math.inf, False),
        "rms_alpha": (0.0, 1.0, True),
        "gamma": (0.0, 1.0, False),
        "label_smoothing": (0.0, 1.0, True),
        "grad_clip": (0.0, math.inf, True),
        "rotate_deg": (0.0, 180.0, True),
        "translate": (0.0, 1.0, True),
        "scale": (0.0, 1.0, True),
        "erase_p": (0.0, 1.0, True),
        "ema_decay": (0.0, 1.0, True),
    }
    for key, (low, high, low_inclusive) in floats.items():
        value = getattr(config, key)
        ok = math.isfinite(value) and (value >= low if low_inclusive else value > low)
        if not ok or value > high:
            lower = f">= {low}" if low_inclusive else f"> {low}"
            raise ConfigError(f"{key} must be a finite number {lower} and <= {high}, got {value}")
    if config.ema_decay >= 1.0:
        raise ConfigError(f"ema_decay must be < 1 (0 = off), got {config.ema_decay}")
    if config.no_aug_last > config.epochs:
        raise ConfigError(
            f"no_aug_last ({config.no_aug_last}) exceeds epochs ({config.epochs}): give "
            f"--no-aug-last {min(config.epochs - 1, 1)} (no_aug_last in a file) or more epochs"
        )
    if config.swa_start > config.epochs:
        raise ConfigError(
            f"swa_start ({config.swa_start}) exceeds epochs ({config.epochs}): give "
            "--swa-start 0 (off; swa_start in a file) or more epochs"
        )
    if len(config.erase_scale) != 2 or not 0 < config.erase_scale[0] <= config.erase_scale[1] <= 1:
        raise ConfigError(
            f"erase_scale must be two fractions 0 < low <= high <= 1, got {config.erase_scale}"
        )
    if list(config.milestones) != sorted(set(config.milestones)) or any(
        m <= 0 for m in config.milestones
    ):
        raise ConfigError(f"milestones must be increasing positive epochs, got {config.milestones}")
    if config.scheduler == "phases":
        if len(config.phase_lrs) != len(config.milestones) + 1:
            raise ConfigError(
                "scheduler 'phases' needs len(phase_lrs) == len(milestones) + 1, got "
                f"{len(config.phase_lrs)} lrs and {len(config.milestones)} milestones"
            )
        if any(not math.isfinite(v) or v <= 0 for v in config.phase_lrs):
            raise ConfigError(f"phase_lrs must be finite and > 0, got {config.phase_lrs}")
    if any(not math.isfinite(a) for a in config.tta_angles):
        raise ConfigError(f"tta_angles must be finite, got {config.tta_angles}")
    if not 0 < config.val_size < 60_000:
        raise ConfigError(f"val_size must be in 1..59999, got {config.val_size}")


# one line per field for `--help`; defaults are appended by the CLI from TrainConfig()
FIELD_HELP: dict[str, str] = {
    "name": "run name, stored in the config",
    "desc": "free-text description, stored in the config",
    "model": "registered model name (see `mnistlab models`), path/to/nets.py:Net or "
    "package.module:make_net (a class or function returning an nn.Module)",
    "model_sha256": "sha256 of a user model's source, pinned when the run is configured",
    "model_options": "model options as KEY=VALUE (repeatable), e.g. dropout_p=0.05",
    "max_params": "scale the model's width to the largest model under this many params (0 = off)",
    "optimizer": f"one of {', '.join(OPTIMIZERS)}",
    "lr": "learning rate (peak lr for onecycle)",
    "momentum": "SGD/RMSprop momentum (0 = vanilla gradient descent)",
    "nesterov": "Nesterov momentum for SGD",
    "weight_decay": "L2 weight decay (decoupled for adamw)",
    "scheduler": f"one of {', '.join(SCHEDULERS)}",
    "pct_start": "onecycle: fraction of training spent raising the lr",
    "div_factor": "onecycle: the lr starts at lr / div_factor",
    "final_div_factor": "onecycle: the lr ends at lr / div_factor / final_div_factor",
    "plateau_metric": "plateau: the validation figure it watches, val_loss or val_acc",
    "rms_alpha": "rmsprop: smoothing constant (alpha) of the squared-gradient average",
    "erase_scale": "augmentation: erased area as low,high fractions of the image",
    "step_size": "step: decay the lr every this many epochs",
    "gamma": "step/multistep/plateau: lr decay factor",
    "milestones": "multistep/phases: comma-separated 1-based epochs where a new lr starts",
    "phase_lrs": "phases: comma-separated lr of each phase (one more than milestones)",
    "patience": "plateau: epochs without val-loss improvement before decaying",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "grad_clip": "clip the gradient norm to this value (0 = off)",
    "epochs": "number of training epochs",
    "batch_size": "training batch size",
    "eval_batch_size": "evaluation batch size",
    "rotate_deg": "augmentation: max random rotation in degrees (0 = off)",
    "translate": "augmentation: max random shift as a fraction of the image size",
    "scale": "augmentation: random zoom in [1-s, 1+s]",
    "erase_p": "augmentation: probability of random erasing",
    "no_aug_last": "train the last N epochs without augmentation",
    "ema_decay": "evaluate an exponential moving average of the weights (0 = off)",
    "swa_start": "average weights from this epoch on, BN re-estimated (0 = off)",
    "monitor_test": "also record test accuracy after every epoch (reported, never selected on)",
    "tta_angles": "test-time augmentation: comma-separated extra rotation angles",
    "seed": "seed of model init, batch order, augmentation and dropout",
    "split_seed": "seed of the train/val split of the official 60k training images",
    "val_size": "validation images held out of the official 60k training set",
    "train_subset": "train on the first N images of the train split (0 = all)",
    "device": f"one of {', '.join(DEVICES)}",
}
