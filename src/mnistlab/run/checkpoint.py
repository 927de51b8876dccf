"""A run's checkpoint: the one writer (`checkpoint_payload`) and the one safe reader.

Checkpoints written by `mnistlab train` are plain dicts of tensors and values, so they load
with ``torch.load(weights_only=True)``, which refuses any pickled object that could run code.
Nothing here ever loads with ``weights_only=False``. Every problem (unreadable, truncated,
malicious, not an mnistlab checkpoint, weights of another architecture) ends as one
:class:`~mnistlab.errors.ConfigError` line that names the file.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError, MnistlabError, first_line
from mnistlab.models.reference import SOURCE_COPY, file_sha256, parse_reference
from mnistlab.run.build import build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "MAX_CHECKPOINT_BYTES",
    "LoadedModel",
    "checkpoint_payload",
    "load_checkpoint",
    "model_from_bytes",
]

CHECKPOINT_FORMAT = "mnistlab-checkpoint-1"

#: The largest model in the zoo is under 100 KB; anything near this is not an mnistlab model.
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode on the CPU, the config it was trained with, and where it came from."""

    model: nn.Module
    config: TrainConfig
    source: str
    info: dict[str, Any] = field(default_factory=dict)  # epoch, val_acc, ... when stored
    warnings: tuple[str, ...] = ()  # e.g. the model file changed since training


def checkpoint_payload(model: nn.Module, config: TrainConfig, **extra: Any) -> dict[str, Any]:
    """What `best.pt`/`last.pt` hold: only tensors and plain values, so the file loads with
    torch.load(weights_only=True)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "state_dict": state, **extra}


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a `best.pt`/`last.pt` (or any file with the same dict format) safely."""
    name = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise ConfigError(
                f"checkpoint {name}: {size:,} bytes is far too large for an mnistlab model"
            )
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"checkpoint {name}: is a directory (give its best.pt)") from None
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {name}: no such file") from None
    except OSError as error:
        raise ConfigError(f"checkpoint {name}: cannot read ({error.strerror})") from None
    return model_from_bytes(data, name)


def model_from_bytes(data: bytes, name: str) -> LoadedModel:
    """Decode checkpoint bytes (see :func:`load_checkpoint`); `name` is used in errors only."""
    payload = _safe_load(data, name)
    if isinstance(payload, dict) and payload and "format" not in payload:
        if all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise ConfigError(
                f"checkpoint {name}: a bare state_dict; mnistlab needs the checkpoint dict "
                "`mnistlab train` writes (best.pt), whose config says which model to build"
            )
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ConfigError(
            f"checkpoint {name}: not an mnistlab checkpoint (format {found!r}, expected "
            f"{CHECKPOINT_FORMAT!r}: a best.pt or last.pt written by `mnistlab train`)"
        )
    config_data, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config_data, dict):
        raise ConfigError(f"checkpoint {name}: has no config dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ConfigError(f"checkpoint {name}: has no state_dict of named tensors")
    try:
        config = TrainConfig.from_dict(config_data, source=name)
        model, notes = _build_user_aware(config, name)
    except MnistlabError as error:
        raise ConfigError(f"checkpoint {name}: bad stored config: {error}") from None
    _check_state(model, state, name, config.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:  # dtype surprises the shape check above does not catch
        raise ConfigError(f"checkpoint {name}: weights do not fit: {first_line(error)}") from None
    model.eval()
    info = {k: payload[k] for k in ("epoch", "val_acc") if isinstance(payload.get(k), int | float)}
    return LoadedModel(model=model, config=config, source=name, info=info, warnings=notes)


def _build_user_aware(config: TrainConfig, name: str) -> tuple[nn.Module, tuple[str, ...]]:
    """Build the checkpoint's model without running code the checkpoint merely names.

    A registered model is the package's code. A user's model is built only from the
    `model_source.py` saved beside the checkpoint, and only when its sha256 is the one the run
    recorded: a checkpoint that names `os:system` or another machine's path runs nothing. The
    file the run was trained from is only compared, never imported here (a note says when it
    changed or is gone)."""
    if ":" not in config.model:
        return build_model(config), ()
    copy = Path(name).parent / SOURCE_COPY
    if not config.model_sha256 or not copy.is_file():
        raise ConfigError(
            f"names user model code ({config.model}); mnistlab builds it only from the "
            f"{SOURCE_COPY} its run saved beside the checkpoint, and there is none "
            "(keep a run directory together)"
        )
    if file_sha256(copy) != config.model_sha256:
        raise ConfigError(
            f"{copy} is not the code this run was trained with (sha256 differs from the "
            f"recorded {config.model_sha256[:12]}); refusing to run it"
        )
    ref = parse_reference(config.model)
    notes: tuple[str, ...] = ()
    if ref.kind == "file" and (
        not ref.path.is_file() or file_sha256(ref.path) != config.model_sha256
    ):
        state = "is missing" if not ref.path.is_file() else "changed"
        notes = (
            f"model file {ref.path} {state} since this run was trained; using the copy "
            f"saved with the run ({copy})",
        )
    return build_model(config.replace(model=f"{copy.resolve()}:{ref.attribute}")), notes


def _safe_load(data: bytes, name: str) -> Any:
    try:
        # weights_only=True: only tensors, containers and plain values can be unpickled; a
        # file that asks for anything else (os.system in a __reduce__) is refused unexecuted
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to decode is a bad file, one line
        if "weights only load failed" in str(error).lower():
            raise ConfigError(
                f"checkpoint {name}: refused: it contains objects other than tensors and plain "
                f"values ({_refused_global(error)}); mnistlab never loads such files"
            ) from None
        reason = first_line(error)
        raise ConfigError(
            f"checkpoint {name}: corrupted or not a PyTorch checkpoint ({reason})"
        ) from None


def _refused_global(error: Exception) -> str:
    for line in str(error).splitlines():
        if "GLOBAL" in line or "Unsupported" in line:
            return " ".join(line.split()).rstrip(".")
    return "unsupported pickle content"


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], name: str, arch: str) -> None:
    """Say in one line how stored weights differ from the architecture the config builds."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {list(state[k].shape)} vs {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
    if problems:
        raise ConfigError(
            f"checkpoint {name}: weights are not those of model {arch!r} as configured: "
            + ", ".join(problems)
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ConfigError(f"checkpoint {name}: non-finite weights in {len(bad)} tensors ({bad[0]})")
