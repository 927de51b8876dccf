"""CUDA smoke checks, one line each (adapted from shared/gpu/smoke.sh to the current modules).

Run on a machine with one CUDA GPU: `python lab/gpu/smoke.py`. Each check reports its own
failure and the next one still runs, so one broken path does not hide the others."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

from mnistlab import cli
from mnistlab.config import TrainConfig
from mnistlab.data import AugmentConfig, load_mnist, split_mnist
from mnistlab.engine.averaging import make_ema
from mnistlab.engine.device import resolve_device
from mnistlab.engine.loop import train_one_epoch
from mnistlab.engine.optim import Schedule, create_optimizer
from mnistlab.engine.trainer import train_run
from mnistlab.models.blocks import Dropout
from mnistlab.run.build import build_model

DEVICE = torch.device(os.environ.get("SMOKE_DEVICE", "cuda"))
QUIET = {"progress": False, "log": None}
NO_GPU = dict(os.environ, CUDA_VISIBLE_DEVICES="")
SCRATCH = Path(tempfile.mkdtemp())


def say(check: str, value: object) -> None:
    print(f"{check:<44} {value}", flush=True)


def check(name: str):
    def wrap(function):
        started = time.perf_counter()
        try:
            say(name, f"{function()}  [{time.perf_counter() - started:.1f}s]")
        except Exception as error:  # a smoke test reports and goes on
            say(name, f"FAILED {type(error).__name__}: {str(error)[:300]}")
            traceback.print_exc(limit=4, file=sys.stdout)
        return function

    return wrap


say(
    "device",
    f"{resolve_device('auto')} ({torch.cuda.get_device_name()}, torch {torch.__version__})",
)
splits = split_mnist(load_mnist(), val_size=2000, train_subset=6400).to(DEVICE)  # 50 steps


def step_syncs(augment: AugmentConfig, ema: bool) -> str:
    """Host<->GPU syncs per train step (CUDA sync-debug mode) and images/s."""
    config = TrainConfig(epochs=1, scheduler="none")
    torch.manual_seed(0)
    model = build_model(config).to(DEVICE)
    optimizer = create_optimizer(model, config)
    averaged = make_ema(model, 0.99) if ema else None
    generator = torch.Generator().manual_seed(0)

    def epoch() -> None:
        train_one_epoch(
            model,
            splits.train_images,
            splits.train_labels,
            optimizer,
            Schedule(optimizer, config, 50),
            batch_size=128,
            generator=generator,
            augment=augment,
            after_step=(lambda: averaged.update_parameters(model)) if averaged else None,
        )

    epoch()
    torch.cuda.synchronize()
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        torch.cuda.set_sync_debug_mode("warn")
        started = time.perf_counter()
        epoch()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        torch.cuda.set_sync_debug_mode(0)
    syncs = sum("ynchroniz" in str(w.message) for w in caught) / 50
    return f"{syncs:.2f} syncs/step, {6400 / seconds:,.0f} img/s"


for label, augment, ema in (
    ("no aug", AugmentConfig(), False),
    ("rotate+translate", AugmentConfig(8, 0.08), False),
    ("erase_p=.5", AugmentConfig(erase_p=0.5), False),
    ("EMA", AugmentConfig(), True),
):
    check(f"train step, {label}")(lambda a=augment, e=ema: step_syncs(a, e))


@check("nn.Dropout on cuda (want 0.250 zeros)")
def _dropout() -> str:
    ones = torch.ones(1 << 20, device=DEVICE)
    return f"{(Dropout(0.25).to(DEVICE).train()(ones) == 0).float().mean():.3f}"


@check("same seed twice on cuda")
def _deterministic() -> str:
    a, b = (
        [
            (e.train_loss, e.val_loss)
            for e in train_run(TrainConfig(device="cuda", epochs=2), splits, **QUIET).epochs
        ]
        for _ in range(2)
    )
    return "identical" if a == b else f"DIFFERS {a[-1]} vs {b[-1]}"


@check("GPU best.pt: cpu tensors / predict w/o GPU")
def _checkpoint() -> str:
    train_run(TrainConfig(device="cuda", epochs=1), splits, SCRATCH / "run", **QUIET)
    state = torch.load(SCRATCH / "run" / "best.pt", weights_only=True)["state_dict"]
    cpu = all(v.is_cpu for v in state.values())
    done = subprocess.run(
        ["mnistlab", "predict", "--checkpoint", str(SCRATCH / "run" / "best.pt"), "docs/digits"],
        env=NO_GPU,
        capture_output=True,
        text=True,
    )
    tail = done.stdout.strip().splitlines()[-1:] or done.stderr[-200:]
    return f"{cpu} / rc={done.returncode} {tail}"


@check("train --device cuda with no GPU visible")
def _no_gpu() -> str:
    done = subprocess.run(
        ["mnistlab", "train", "--device", "cuda", "--epochs", "1", "--out", str(SCRATCH / "nc")],
        env=NO_GPU,
        capture_output=True,
        text=True,
    )
    return f"rc={done.returncode} {done.stderr.strip()[-160:]}"


@check("train OOM -> exit code")
def _oom() -> object:
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(0.003)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return cli.main(
                [
                    "train",
                    "--device",
                    "cuda",
                    "--batch-size",
                    "20000",
                    "--train-subset",
                    "20000",
                    "--epochs",
                    "1",
                    "--no-progress",
                    "--out",
                    str(SCRATCH / "oom"),
                ]
            )
    except torch.OutOfMemoryError:
        return "uncaught OutOfMemoryError -> traceback"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
