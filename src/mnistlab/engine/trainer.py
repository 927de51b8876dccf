"""One training run from a config: train, select on val, test once, write the run directory.

The run directory holds `config.toml`, `epochs.csv`, `best.pt`, `last.pt` and `summary.json`.
The test set is evaluated exactly once, on the weights chosen by validation accuracy.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnistlab import __version__
from mnistlab.config import TrainConfig
from mnistlab.data import AugmentConfig, Splits
from mnistlab.engine.averaging import make_ema, make_swa, refresh_bn
from mnistlab.engine.device import reproducible_kernels, resolve_device
from mnistlab.engine.loop import EpochStats, evaluate, train_one_epoch
from mnistlab.engine.optim import Schedule, create_optimizer, short_run_advice
from mnistlab.fsutil import atomic_torch_save, atomic_write_text
from mnistlab.models import count_params
from mnistlab.models.reference import (
    SOURCE_COPY,
    check_trainable_output,
    parse_reference,
    source_of,
)
from mnistlab.records import RunStatus, RunSummary
from mnistlab.run.build import build_model
from mnistlab.run.checkpoint import checkpoint_payload

EPOCH_FIELDS = (
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "test_acc",
)  # fmt: skip
DIVERGED_LOSS = 100.0
MISSING_SOURCE = "unavailable: Python could not find the model's source (defined interactively?)"


@dataclass
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float
    # only with config.monitor_test: measured for the report, never used to choose anything
    test_acc: float | None = None

    def as_row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in EPOCH_FIELDS}


@dataclass
class RunResult:
    summary: RunSummary
    epochs: list[EpochRecord] = field(default_factory=list)
    # the weights chosen on val (SWA/EMA ones where those were chosen), in a copy of the model;
    # None when no epoch finished
    model: nn.Module | None = None


class StopRun(Exception):
    """Raised by an `on_epoch` callback to end a run early (e.g. an Optuna pruner)."""


EpochCallback = Callable[[EpochRecord], None]


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of a model or of the module inside an AveragedModel, with plain key names."""
    inner = model.module if hasattr(model, "module") else model
    return {k: v.detach().clone() for k, v in inner.state_dict().items()}


def train_run(
    config: TrainConfig,
    splits: Splits,
    out_dir: Path | None = None,
    *,
    progress: bool = True,
    on_epoch: EpochCallback | None = None,
    log: Callable[[str], None] | None = print,
    model: nn.Module | Callable[[], nn.Module] | None = None,
    model_source: str | None = None,
) -> RunResult:
    """Train `config` on `splits` and return its summary; write the run directory if `out_dir`.

    `model`: instead of building `config.model`, train this module (its initialisation is the
    caller's) or call this builder under the config's seed (the Python API's classes and
    factories); `model_source`: its source, copied into the run directory (a file or module
    reference's source is copied without being asked)."""
    if out_dir is not None and model_source:
        # an object's source, found by the caller; a reference's is copied by RunState
        write_model_source(out_dir, config, model_source)
    with started_run(config, splits, out_dir, on_epoch, log, model=model) as (run, generator):
        return _train(run, generator, progress)


@contextlib.contextmanager
def started_run(
    config: TrainConfig,
    splits: Splits,
    out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
    log: Callable[[str], None] | None = None,
    *,
    model: nn.Module | Callable[[], nn.Module] | None = None,
) -> Iterator[tuple[RunState, torch.Generator]]:
    """Everything `train_run` does before its first step: the data on the device, the seeded
    batch/augmentation generator, the model, optimizer and schedule (`RunState`), inside the
    RNG and kernel settings its steps run under. `mnistlab bench` times steps in it too."""
    device = resolve_device(config.device)
    splits = splits.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    # fork_rng keeps the caller's global RNG untouched while init and dropout draw from it
    with torch.random.fork_rng(devices=[]), reproducible_kernels(device):
        torch.manual_seed(config.seed)
        if model is None:
            model = build_model(config)
        elif not isinstance(model, nn.Module):
            model = model()
        model = model.to(device)
        check_trainable_output(config.model, model)
        yield RunState(config, model, splits, device, out_dir, on_epoch, log), generator


def write_model_source(out_dir: Path, config: TrainConfig, source: str | None = None) -> None:
    """Copy a user model's source beside its weights (provenance; `eval` falls back to it)."""
    if source is None and config.model_sha256:
        source, _ = source_of(parse_reference(config.model))
    if source:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / SOURCE_COPY, source)


def _train(run: RunState, generator: torch.Generator, progress: bool) -> RunResult:
    config = run.config
    bar = _EpochBar(progress, config.epochs, run.splits.train_images.shape[0])
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_started = time.perf_counter()
            bar.start(epoch)
            train_stats = run.train_epoch(epoch, generator, on_batch=bar.advance)
            bar.finish()
            if not run.end_epoch(epoch, train_stats, epoch_started):
                break
    finally:
        bar.close()
    return run.finish()


class RunState:
    """One run's state and bookkeeping around its training steps.

    Model, optimizer, schedule, weight averages, per-epoch records, the weights chosen on val,
    the run directory. `train_run` drives the training steps and calls `end_epoch` after each
    epoch and `finish` at the end.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        splits: Splits,
        device: torch.device,
        out_dir: Path | None,
        on_epoch: EpochCallback | None,
        log: Callable[[str], None] | None,
    ) -> None:
        self.config, self.model, self.splits, self.device = config, model, splits, device
        self.out_dir, self.on_epoch, self.log = out_dir, on_epoch, log
        self.params = count_params(model)
        self.optimizer = create_optimizer(model, config)
        steps_per_epoch = math.ceil(splits.train_images.shape[0] / config.batch_size)
        self.schedule = Schedule(self.optimizer, config, steps_per_epoch)
        advice = short_run_advice(config, steps_per_epoch)
        if advice:
            _log(log, advice)
        self.augment = AugmentConfig(
            rotate_deg=config.rotate_deg,
            translate=config.translate,
            scale=config.scale,
            erase_p=config.erase_p,
            erase_scale=(config.erase_scale[0], config.erase_scale[1]),
        )
        self.ema = make_ema(model, config.ema_decay) if config.ema_decay > 0 else None
        self.swa = make_swa(model) if config.swa_start > 0 else None
        self.eval_model: nn.Module = self.ema if self.ema is not None else model
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out_dir / "config.toml", config.to_toml())
            if not (out_dir / SOURCE_COPY).exists():  # a resumed run keeps its copy
                write_model_source(out_dir, config)
        self.records: list[EpochRecord] = []
        self.best: dict[str, Any] = {
            "val_acc": -1.0,
            "val_loss": math.inf,
            "epoch": 0,
            "state": None,
        }
        self.state = RunStatus.RUNNING  # then finished, diverged or pruned
        self.diverged_epoch = 0
        self.lr = self.schedule.lr
        self.started = time.perf_counter()

    @property
    def active(self) -> bool:
        return self.state == RunStatus.RUNNING

    def augment_for(self, epoch: int) -> AugmentConfig:
        self.lr = self.schedule.lr  # the lr the epoch starts with, for its record
        use_augment = epoch <= self.config.epochs - self.config.no_aug_last
        return self.augment if use_augment else AugmentConfig()

    def after_step(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def train_epoch(
        self,
        epoch: int,
        generator: torch.Generator,
        on_batch: Callable[[int], None] | None = None,
    ) -> EpochStats:
        """Epoch `epoch`'s training steps (`engine.loop.train_one_epoch`), as this config asks."""
        config, splits = self.config, self.splits
        return train_one_epoch(
            self.model,
            splits.train_images,
            splits.train_labels,
            self.optimizer,
            self.schedule,
            batch_size=config.batch_size,
            generator=generator,
            augment=self.augment_for(epoch),
            label_smoothing=config.label_smoothing,
            grad_clip=config.grad_clip,
            after_step=self.after_step,
            on_batch=on_batch,
        )

    def end_epoch(self, epoch: int, train_stats: EpochStats, epoch_started: float) -> bool:
        """Validate, record, keep the best weights; False when the run has stopped."""
        config, splits = self.config, self.splits
        if self.swa is not None and epoch >= config.swa_start:
            self.swa.update_parameters(self.model)
        val_stats = evaluate(
            self.eval_model,
            splits.val_images,
            splits.val_labels,
            batch_size=config.eval_batch_size,
        )
        if _diverged(train_stats, val_stats):
            self.state, self.diverged_epoch = RunStatus.DIVERGED, epoch
            _log(
                self.log,
                f"epoch {epoch}: train loss {train_stats.loss:.4g}, val loss "
                f"{val_stats.loss:.4g}; run diverged",
            )
            return False
        self.schedule.after_epoch(val_stats.loss, val_stats.acc)
        monitored = (
            evaluate(
                self.eval_model,
                splits.test_images,
                splits.test_labels,
                batch_size=config.eval_batch_size,
            ).acc
            if config.monitor_test
            else None
        )
        record = EpochRecord(
            epoch,
            self.lr,
            train_stats.loss,
            train_stats.acc,
            val_stats.loss,
            val_stats.acc,
            time.perf_counter() - epoch_started,
            monitored,
        )
        self.records.append(record)
        if self.out_dir is not None:
            _write_epochs(self.out_dir, self.records)
        if _better(val_stats, self.best):
            self.best.update(
                val_acc=val_stats.acc,
                val_loss=val_stats.loss,
                epoch=epoch,
                state=_plain_state(self.eval_model),
            )
            if self.out_dir is not None:
                atomic_torch_save(
                    self.out_dir / "best.pt", _ckpt(self.eval_model, config, self.best)
                )
        _log(self.log, _epoch_line(record, config.epochs))
        if self.on_epoch is not None:
            try:
                self.on_epoch(record)
            except StopRun:
                self.state = RunStatus.PRUNED
                return False
        if epoch == config.epochs:
            self.state = RunStatus.FINISHED
        return self.active

    def finish(self) -> RunResult:
        """SWA, the one test evaluation on the weights chosen on val, last.pt and summary."""
        config, splits, best, model = self.config, self.splits, self.best, self.model
        if self.state == RunStatus.RUNNING:
            self.state = RunStatus.FINISHED
        selected = "epoch"
        if self.swa is not None and self.state == RunStatus.FINISHED:
            # SWA weights are only meaningful after BN statistics are recomputed for them
            refresh_bn(self.swa, splits.train_images)
            swa_val = evaluate(
                self.swa, splits.val_images, splits.val_labels, batch_size=config.eval_batch_size
            )
            _log(self.log, f"swa: val_loss {swa_val.loss:.4f} val_acc {swa_val.acc:.2f}%")
            if _better(swa_val, best):
                best.update(
                    val_acc=swa_val.acc,
                    val_loss=swa_val.loss,
                    epoch=config.epochs,
                    state=_plain_state(self.swa),
                )
                selected = "swa"
                if self.out_dir is not None:
                    atomic_torch_save(self.out_dir / "best.pt", _ckpt(self.swa, config, best))

        test_stats: EpochStats | None = None
        tta_val: EpochStats | None = None
        final: nn.Module | None = None
        if best["state"] is not None:
            final = copy.deepcopy(model)
            final.load_state_dict(best["state"])
            final.eval()
        # a pruned run's test accuracy would never be used: do not spend the evaluation
        if final is not None and self.state == RunStatus.FINISHED:
            if config.tta_angles:
                tta_val = evaluate(
                    final,
                    splits.val_images,
                    splits.val_labels,
                    batch_size=config.eval_batch_size,
                    tta_angles=config.tta_angles,
                )
            test_stats = evaluate(
                final,
                splits.test_images,
                splits.test_labels,
                batch_size=config.eval_batch_size,
                tta_angles=config.tta_angles,
            )
        records = self.records
        if self.out_dir is not None:
            atomic_torch_save(
                self.out_dir / "last.pt", _ckpt(model, config, {"epoch": len(records)})
            )

        seconds = time.perf_counter() - self.started
        summary: RunSummary = {
            "name": config.name,
            "model": config.model,
            "params": self.params,
            "state": str(self.state),
            "epochs": config.epochs,
            "epochs_run": len(records),
            "best_epoch": best["epoch"],
            "selected": selected,
            "val_acc": _number(best["val_acc"]) if best["state"] is not None else None,
            "val_loss": _number(best["val_loss"]) if best["state"] is not None else None,
            "val_acc_tta": tta_val.acc if tta_val else None,
            "test_acc": test_stats.acc if test_stats else None,
            "test_loss": test_stats.loss if test_stats else None,
            "diverged_epoch": self.diverged_epoch or None,
            "seconds": round(seconds, 3),
            "seconds_per_epoch": round(sum(r.seconds for r in records) / max(len(records), 1), 3),
            "train_size": int(splits.train_images.shape[0]),
            "val_size": int(splits.val_images.shape[0]),
            "test_size": int(splits.test_images.shape[0]),
            "seed": config.seed,
            "device": str(self.device),
            "threads": torch.get_num_threads(),  # CPU numerics' low bits depend on it
            "torch": torch.__version__,
            "mnistlab": __version__,
            "config_hash": config.config_hash(),
        }
        if ":" in config.model:  # a user's model: where its code is kept, or that it is not
            summary["model_sha256"] = config.model_sha256 or None
            summary["model_source"] = SOURCE_COPY if config.model_sha256 else MISSING_SOURCE
        if self.out_dir is not None:
            atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return RunResult(summary=summary, epochs=records, model=final)


def _diverged(train: EpochStats, val: EpochStats) -> bool:
    # chance-level cross-entropy is ln(10) = 2.3; a mean loss 40x that means the weights blew up
    return not (math.isfinite(train.loss) and math.isfinite(val.loss)) or train.loss > DIVERGED_LOSS


def _better(stats: EpochStats, best: dict[str, Any]) -> bool:
    # val accuracy first; val loss breaks ties (10k val images make ties common)
    return (stats.acc, -stats.loss) > (best["val_acc"], -best["val_loss"])


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ckpt(model: nn.Module, config: TrainConfig, info: dict[str, Any]) -> dict[str, Any]:
    inner = model.module if hasattr(model, "module") else model
    extra = {k: info[k] for k in ("epoch", "val_acc") if k in info}
    return checkpoint_payload(inner, config, **extra)


def _write_epochs(out_dir: Path, records: list[EpochRecord]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EPOCH_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _fmt(v) for k, v in record.as_row().items()})
    atomic_write_text(out_dir / "epochs.csv", buffer.getvalue())


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _epoch_line(record: EpochRecord, epochs: int) -> str:
    width = len(str(epochs))
    return (
        f"epoch {record.epoch:>{width}}/{epochs}  lr {record.lr:.5f}  "
        f"train {record.train_loss:.4f} {record.train_acc:6.2f}%  "
        f"val {record.val_loss:.4f} {record.val_acc:6.2f}%  {record.seconds:5.1f}s"
        + (f"  (test {record.test_acc:.2f}%, monitor only)" if record.test_acc is not None else "")
    )


def _log(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


class _EpochBar:
    """A rich progress bar over the images of one epoch (nothing when disabled)."""

    def __init__(self, enabled: bool, epochs: int, images: int):
        self.enabled, self.epochs, self.images = enabled, epochs, images
        self.progress = None
        self.task = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            # In a terminal, lines printed during the bar go above it; in Jupyter the bar is a
            # widget that is cleared when it ends, so lines must go to the cell's own output
            jupyter = Console().is_jupyter
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("img"),
                TimeRemainingColumn(),
                transient=True,
                redirect_stdout=not jupyter,
                redirect_stderr=not jupyter,
            )
            self.progress.start()

    def start(self, epoch: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(f"epoch {epoch}/{self.epochs}", total=self.images)

    def advance(self, count: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, count)

    def finish(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
