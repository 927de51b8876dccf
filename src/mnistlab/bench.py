"""`mnistlab bench`: seed 000's training pipeline and `mnistlab train`'s own steps, side by side.

Reference (`bench_reference`, which imports nothing of mnistlab): seed 000's TinyMNISTNet with
`nn.Dropout`, torchvision `MNIST` + PIL `RandomRotation(7)` + `ToTensor` + `Normalize` through
a `DataLoader` with 2 workers, SGD + OneCycleLR, `loss.item()` every step.

mnistlab: the steps `train` runs, not a copy of them: `engine.trainer.started_run` sets the run
up as `train_run` does (the data as uint8 tensors on the device, the model, optimizer and
schedule built from a `TrainConfig`), and `RunState.train_epoch` (`engine.loop.train_one_epoch`:
batches by index, augmentation on whole batches) trains; its `on_batch` hook stops it once a
round's images are done. The config is the default one with seed 000's augmentation (rotation
±7°, no translation) and batch size.

Both sides train for the same number of images per round, in rounds that alternate which side
goes first, after untimed warm-up steps (worker start-up included); validation, checkpoints and
data loading are not timed on either side. The 1-minute load average is recorded before and
after: other processes on the machine slow both sides and inflate or deflate the absolute
figures; the interleaved rounds are what keeps the ratio fair.

`--grid K`: K configs as `grid --workers W` trains them (W = min(K, cores) spawned processes
side by side, cores // W threads each, every one running the same steps) against the reference
training K configs one after another, whose aggregate rate is its one-model rate.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnistlab.bench_reference import ROTATION_DEG, SeedTrainer, stage_mnist
from mnistlab.config import TrainConfig
from mnistlab.data import Splits, ensure_mnist, find_files, load_mnist
from mnistlab.engine.device import resolve_device, torch_threads
from mnistlab.engine.trainer import RunState, started_run
from mnistlab.errors import MnistlabError
from mnistlab.run.build import splits_for

WARMUP_STEPS = 10
# OneCycle needs its length up front: enough epochs that no round runs past the schedule's end
# on any device (a GPU step of `tiny` at batch 128 takes >= ~1 ms: < 200k images/s)
_MAX_IMG_PER_S = 200_000


@dataclass(frozen=True)
class Timing:
    images: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def _rate(timings: list[Timing]) -> float:
    return sum(t.images for t in timings) / sum(t.seconds for t in timings)


@dataclass(frozen=True)
class BenchResult:
    model: str
    batch_size: int
    device: str
    threads: int
    images_per_round: int
    reference: list[Timing]  # one per round
    mnistlab: list[Timing]
    load_avg: tuple[float, float]  # 1-minute load average before and after
    grid_configs: int = 0
    grid_workers: int = 0
    workers: list[Timing] | None = None  # the grid's worker processes, aggregate per round

    @property
    def reference_img_per_s(self) -> float:
        return _rate(self.reference)

    @property
    def mnistlab_img_per_s(self) -> float:
        return _rate(self.mnistlab)

    @property
    def speedup(self) -> float:
        return self.mnistlab_img_per_s / self.reference_img_per_s

    @property
    def round_speedups(self) -> list[float]:
        return [m.rate / r.rate for m, r in zip(self.mnistlab, self.reference, strict=True)]

    @property
    def workers_img_per_s(self) -> float:
        return _rate(self.workers) if self.workers else 0.0

    @property
    def grid_best_mode(self) -> str:
        return "workers" if self.workers_img_per_s > self.mnistlab_img_per_s else "sequential"

    @property
    def grid_speedup(self) -> float:
        best = max(self.mnistlab_img_per_s, self.workers_img_per_s)
        return best / self.reference_img_per_s

    @property
    def grid_round_speedups(self) -> list[float]:
        return [
            max(m.rate, w.rate) / r.rate
            for m, w, r in zip(self.mnistlab, self.workers or [], self.reference, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "model": self.model,
            "batch_size": self.batch_size,
            "device": self.device,
            "threads": self.threads,
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "rounds": len(self.reference),
            "images_per_round": self.images_per_round,
            "load_avg_1min": list(self.load_avg),
            "reference_img_per_s": round(self.reference_img_per_s, 1),
            "mnistlab_img_per_s": round(self.mnistlab_img_per_s, 1),
            "speedup": round(self.speedup, 3),
            "speedup_per_round": [round(s, 3) for s in self.round_speedups],
        }
        if self.workers is not None:
            record.update(
                {
                    "grid_configs": self.grid_configs,
                    "grid_workers": self.grid_workers,
                    "grid_reference_img_per_s": round(self.reference_img_per_s, 1),
                    "grid_sequential_img_per_s": round(self.mnistlab_img_per_s, 1),
                    "grid_workers_img_per_s": round(self.workers_img_per_s, 1),
                    "grid_best_mode": self.grid_best_mode,
                    "grid_speedup": round(self.grid_speedup, 3),
                    "grid_speedup_per_round": [round(s, 3) for s in self.grid_round_speedups],
                }
            )
        return record


class _Enough(Exception):
    """Raised from `on_batch` to end a timed stretch of steps."""


class ProductSteps:
    """`train`'s own steps, resumable: `train(images)` runs `RunState.train_epoch` until at
    least `images` images were trained (each call starts a new epoch: a fresh shuffle)."""

    def __init__(self, run: RunState, generator: torch.Generator) -> None:
        self.run, self.generator = run, generator
        self.epoch = 0
        self.sync: Callable[[], None] = (
            torch.cuda.synchronize if run.device.type == "cuda" else (lambda: None)
        )

    def train(self, images: int) -> int:
        done = 0

        def count(batch: int) -> None:
            nonlocal done
            done += batch
            if done >= images:
                raise _Enough

        while True:
            self.epoch += 1
            try:
                self.run.train_epoch(self.epoch, self.generator, on_batch=count)
            except _Enough:
                return done

    def timed(self, images: int) -> Timing:
        self.sync()  # a CUDA step's kernels may still run: wait for them before and after
        started = time.perf_counter()
        done = self.train(images)
        self.sync()
        return Timing(done, time.perf_counter() - started)


def bench_config(model: str, batch_size: int, device: str, epochs: int) -> TrainConfig:
    """The config mnistlab's side trains: the defaults, seed 000's augmentation and batch size,
    and enough epochs that the OneCycle schedule outlasts the benchmark."""
    return TrainConfig(
        name="bench",
        model=model,
        batch_size=batch_size,
        rotate_deg=ROTATION_DEG,
        translate=0.0,
        epochs=epochs,
        device=device,
    )


def _splits(config: TrainConfig, data_dir: Path) -> Splits:
    data = load_mnist(data_dir, download=False)
    return splits_for(config, data)


def _worker_main(
    config: dict[str, Any], data_dir: str, threads: int, lr: float, commands: Any, replies: Any
) -> None:
    """A grid worker: `threads` threads (as `grid --workers` sets them), its own config."""
    torch.set_num_threads(threads)
    config_ = TrainConfig.from_dict({**config, "lr": lr})
    with started_run(config_, _splits(config_, Path(data_dir))) as (run, generator):
        steps = ProductSteps(run, generator)
        steps.train(WARMUP_STEPS * config_.batch_size)
        replies.put("ready")
        while (images := commands.get()) is not None:
            replies.put(steps.timed(images))


class WorkerPool:
    """`workers` spawned processes training side by side; `timed(images)` shares the images
    out and times the whole from the first command to the last reply."""

    def __init__(self, config: TrainConfig, data_dir: Path, workers: int, timeout: float):
        context = mp.get_context("spawn")
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.timeout = timeout
        self.replies = context.Queue()
        self.commands = [context.Queue() for _ in range(workers)]
        self.processes = [
            context.Process(
                target=_worker_main,
                args=(
                    config.to_dict(),
                    str(data_dir),
                    self.threads,
                    config.lr * (1 + 0.1 * index),  # a grid's configs differ: here by lr
                    commands,
                    self.replies,
                ),
                daemon=True,
            )
            for index, commands in enumerate(self.commands)
        ]
        for process in self.processes:
            process.start()
        for _ in self.processes:
            if self._reply() != "ready":
                raise MnistlabError("a bench worker process did not start")
        self.batch_size = config.batch_size

    def _reply(self) -> Any:
        try:
            return self.replies.get(timeout=self.timeout)
        except Exception:
            raise MnistlabError("a bench worker process did not answer (died?)") from None

    def timed(self, images: int) -> Timing:
        steps = math.ceil(images / self.batch_size / len(self.commands))
        started = time.perf_counter()
        for commands in self.commands:
            commands.put(steps * self.batch_size)
        done = sum(self._reply().images for _ in self.commands)
        return Timing(done, time.perf_counter() - started)

    def close(self) -> None:
        for commands in self.commands:
            commands.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def run_bench(
    model: str = "tiny",
    batch_size: int = 128,
    seconds: float = 20.0,
    data_dir: Path | None = None,
    *,
    device: str = "auto",
    rounds: int = 4,
    grid: int | None = None,
    threads: int | None = None,
) -> BenchResult:
    """Time both sides for about `seconds` of reference training in all, in `rounds` rounds.

    `threads`: torch's intra-op threads in this process, for both sides (default: as it is:
    what `train` gets); the grid's workers and the reference's DataLoader workers set their own
    (cores // workers, and 1)."""
    directory = ensure_mnist(data_dir, log=lambda _: None)
    torch_device = resolve_device(device)
    epochs = math.ceil(seconds * _MAX_IMG_PER_S / 50_000) + rounds + 4
    config = bench_config(model, batch_size, str(torch_device), epochs)
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        # the caller's global RNG stays as it was (the reference seeds and draws from it)
        stack.enter_context(torch.random.fork_rng(devices=[]))
        stack.enter_context(torch_threads(threads))
        used_threads = torch.get_num_threads()
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mnistlab-bench-")))
        files = find_files(directory)
        assert files is not None  # ensure_mnist returned: all four are there
        reference = SeedTrainer(stage_mnist(files, root), batch_size, torch_device, epochs=epochs)
        run, generator = stack.enter_context(started_run(config, _splits(config, directory)))
        ours = ProductSteps(run, generator)
        pool = None
        workers = 0
        if grid is not None:
            workers = max(1, min(grid, os.cpu_count() or 1))
            pool = WorkerPool(config, directory, workers, timeout=seconds * 10 + 300)
            stack.callback(pool.close)
        warmup = WARMUP_STEPS * batch_size
        reference.train(warmup)  # the DataLoader's worker processes start here
        ours.train(warmup)
        # rounds as long as the reference takes for seconds / rounds, measured right after warm-up
        pace = reference.timed(warmup)
        steps = max(1, round(pace[0] / pace[1] * seconds / rounds / batch_size))
        images = steps * batch_size
        sides: dict[str, Callable[[int], Timing]] = {
            "reference": lambda n: Timing(*reference.timed(n)),
            "mnistlab": ours.timed,
        }
        if pool is not None:
            sides["workers"] = pool.timed
        timings: dict[str, list[Timing]] = {name: [] for name in sides}
        for index in range(rounds):
            order = list(sides) if index % 2 == 0 else list(reversed(sides))
            for name in order:
                timings[name].append(sides[name](images))
    return BenchResult(
        model=model,
        batch_size=batch_size,
        device=str(torch_device),
        threads=used_threads,
        images_per_round=images,
        reference=timings["reference"],
        mnistlab=timings["mnistlab"],
        load_avg=(load_before, os.getloadavg()[0]),
        grid_configs=grid or 0,
        grid_workers=workers,
        workers=timings.get("workers"),
    )


def bench_lines(result: BenchResult) -> Iterator[str]:
    """The text report, last line `speedup=X`."""
    before, after = result.load_avg
    yield (
        f"model {result.model}, batch {result.batch_size}, device {result.device}, "
        f"{result.threads} threads, torch {torch.__version__}; load average {before:.2f} at "
        f"start, {after:.2f} at end ({os.cpu_count()} cores: a load above that slows both sides)"
    )
    yield (
        f"{len(result.reference)} interleaved rounds of {result.images_per_round:,} images per "
        f"side, after {WARMUP_STEPS} untimed warm-up steps each"
    )
    yield (
        "reference (seed 000: torchvision DataLoader, 2 workers, PIL RandomRotation(7), "
        f"nn.Dropout, SGD + OneCycle, loss.item()): {result.reference_img_per_s:,.0f} img/s"
    )
    yield (
        "mnistlab (train's steps: engine.loop.train_one_epoch, uint8 on the device, batched "
        f"rotation): {result.mnistlab_img_per_s:,.0f} img/s"
    )
    if result.workers is not None:
        yield f"grid of {result.grid_configs} configs, aggregate train img/s:"
        yield f"  reference, one config after another: {result.reference_img_per_s:,.0f}"
        yield f"  mnistlab, one config after another: {result.mnistlab_img_per_s:,.0f}"
        threads = max(1, (os.cpu_count() or 1) // result.grid_workers)
        yield (
            f"  mnistlab, {result.grid_workers} worker processes x {threads} thread(s) side by "
            f"side (grid --workers {result.grid_workers}): {result.workers_img_per_s:,.0f}"
        )
        per_round = " ".join(f"{s:.2f}" for s in result.grid_round_speedups)
        yield (
            f"grid_speedup={result.grid_speedup:.2f} ({result.grid_best_mode}; "
            f"per round {per_round})"
        )
    per_round = " ".join(f"{s:.2f}" for s in result.round_speedups)
    yield f"per round: {per_round}"
    yield f"speedup={result.speedup:.2f}"
