"""`mnistlab bench`: the seeds' training pipeline and mnistlab's, side by side in one process.

Reference (what seed 000 does): torchvision `datasets.MNIST` + `RandomRotation(7)` + `ToTensor`
+ `Normalize` through a `DataLoader` with 2 workers, one PIL image at a time. mnistlab: the same
model, optimizer and augmentation strength on a device-resident uint8 tensor, augmented per
batch. Both train for the same wall-clock budget after a warm-up; throughput is train images/s.

`--grid K` also times K configs of the same model three ways, as aggregate train images/s:
one after another (all threads on one model), side by side in worker processes (what
`grid --workers N` does: cores split between processes, 1 thread each on 2 cores), and fused
(`engine.fused`: one batched forward/backward of all K). The reference runs a grid one config
after another, so its aggregate rate is its single-model rate.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mnistlab.data import AugmentConfig, augment_batch, ensure_mnist, load_mnist, normalize
from mnistlab.data.sources import find_files
from mnistlab.errors import MnistlabError
from mnistlab.models import create_model

ROTATION_DEG = 7.0  # seed 000's augmentation


@dataclass(frozen=True)
class BenchResult:
    model: str
    batch_size: int
    threads: int
    reference_img_per_s: float
    mnistlab_img_per_s: float

    @property
    def speedup(self) -> float:
        return self.mnistlab_img_per_s / self.reference_img_per_s

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "torch": torch.__version__,
            "reference_img_per_s": round(self.reference_img_per_s, 1),
            "mnistlab_img_per_s": round(self.mnistlab_img_per_s, 1),
            "speedup": round(self.speedup, 3),
        }


def _timed(steps: Iterator[int], seconds: float, warmup_steps: int = 5) -> float:
    """Images/s over `seconds` of steps, after `warmup_steps` untimed ones."""
    for _ in range(warmup_steps):
        next(steps)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        images += next(steps)
    return images / (time.perf_counter() - started)


def _train_steps(
    model: torch.nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    prepare: Callable[[torch.Tensor], torch.Tensor],
) -> Iterator[int]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for inputs, labels in batches:
        loss = F.cross_entropy(model(prepare(inputs)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        yield labels.shape[0]


def _forever(make: Callable[[], Iterator]) -> Iterator:
    while True:
        yield from make()


def reference_throughput(model_name: str, batch_size: int, seconds: float, data_dir: Path) -> float:
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise MnistlabError(
            "the reference pipeline needs torchvision: pip install 'mnistlab[bench]'"
        ) from None
    transform = transforms.Compose(
        [
            transforms.RandomRotation(ROTATION_DEG),
            transforms.ToTensor(),
            transforms.Normalize((0.1307,), (0.3081,)),
        ]
    )
    with tempfile.TemporaryDirectory() as root:
        # torchvision wants ROOT/MNIST/raw/<files>: link our verified files there
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, path in (find_files(data_dir) or {}).items():
            # torchvision reads the uncompressed IDX files; decompression is not timed
            payload = path.read_bytes()
            if path.suffix == ".gz":
                payload = gzip.decompress(payload)
            (raw / name).write_bytes(payload)
        dataset = datasets.MNIST(root, train=True, download=False, transform=transform)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=2,
            persistent_workers=True,
        )
        torch.manual_seed(0)
        model = create_model(model_name)
        steps = _train_steps(model, _forever(lambda: iter(loader)), lambda x: x)
        return _timed(steps, seconds)


def mnistlab_throughput(model_name: str, batch_size: int, seconds: float, data_dir: Path) -> float:
    generator = torch.Generator().manual_seed(0)
    augment = AugmentConfig(rotate_deg=ROTATION_DEG)
    torch.manual_seed(0)
    model = create_model(model_name)
    steps = _train_steps(
        model,
        _our_batches(data_dir, batch_size, generator),
        lambda x: augment_batch(normalize(x), augment, generator),
    )
    return _timed(steps, seconds)


@dataclass(frozen=True)
class GridBenchResult:
    configs: int
    workers: int
    reference_img_per_s: float  # the seeds' way: one config after another
    sequential_img_per_s: float  # mnistlab, one config after another
    workers_img_per_s: float  # mnistlab, `workers` processes side by side
    fused_img_per_s: float  # mnistlab, all configs fused in one process

    @property
    def best_mode(self) -> str:
        rates = {
            "sequential": self.sequential_img_per_s,
            "workers": self.workers_img_per_s,
            "fused": self.fused_img_per_s,
        }
        return max(rates, key=rates.__getitem__)

    @property
    def speedup(self) -> float:
        best = max(self.sequential_img_per_s, self.workers_img_per_s, self.fused_img_per_s)
        return best / self.reference_img_per_s

    def to_dict(self) -> dict:
        return {
            "grid_configs": self.configs,
            "grid_workers": self.workers,
            "grid_reference_img_per_s": round(self.reference_img_per_s, 1),
            "grid_sequential_img_per_s": round(self.sequential_img_per_s, 1),
            "grid_workers_img_per_s": round(self.workers_img_per_s, 1),
            "grid_fused_img_per_s": round(self.fused_img_per_s, 1),
            "grid_fused_vs_sequential": round(self.fused_img_per_s / self.sequential_img_per_s, 3),
            "grid_best_mode": self.best_mode,
            "grid_speedup": round(self.speedup, 3),
        }


def _our_batches(
    data_dir: Path, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    data = load_mnist(data_dir, download=False)
    images, labels = data.images[:60_000], data.labels[:60_000]
    while True:
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], batch_size):
            index = order[start : start + batch_size]
            yield images[index], labels[index]


def fused_throughput(
    model_name: str, batch_size: int, seconds: float, data_dir: Path, configs: int
) -> float:
    """Aggregate img/s of `configs` models (different lrs) trained fused on the same batches."""
    from mnistlab.engine.fused import FusedModels

    generator = torch.Generator().manual_seed(0)
    augment = AugmentConfig(rotate_deg=ROTATION_DEG)
    torch.manual_seed(0)
    models = [create_model(model_name) for _ in range(configs)]
    fused = FusedModels(models, [0.0] * configs)
    optimizers = [
        torch.optim.SGD(m.parameters(), lr=0.01 * (1 + i), momentum=0.9)
        for i, m in enumerate(models)
    ]
    fused.train()

    def steps() -> Iterator[int]:
        for inputs, labels in _our_batches(data_dir, batch_size, generator):
            fused.backward(augment_batch(normalize(inputs), augment, generator), labels)
            for optimizer in optimizers:
                optimizer.step()
            yield labels.shape[0] * configs

    return _timed(steps(), seconds)


def _worker_throughput(
    model_name: str, batch_size: int, seconds: float, data_dir: str, threads: int, results: Any
) -> None:
    torch.set_num_threads(threads)
    results.put(mnistlab_throughput(model_name, batch_size, seconds, Path(data_dir)))


def workers_throughput(
    model_name: str, batch_size: int, seconds: float, data_dir: Path, workers: int
) -> float:
    """Aggregate img/s of `workers` spawned processes, each training its own model."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(
            target=_worker_throughput,
            args=(model_name, batch_size, seconds, str(data_dir), threads, results),
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    rates = [results.get(timeout=seconds * 10 + 120) for _ in processes]
    for process in processes:
        process.join()
    return sum(rates)


def run_grid_bench(
    reference_img_per_s: float,
    model: str = "tiny",
    batch_size: int = 128,
    seconds: float = 20.0,
    data_dir: Path | None = None,
    configs: int = 4,
) -> GridBenchResult:
    directory = ensure_mnist(data_dir, log=lambda _: None)
    workers = max(1, min(configs, os.cpu_count() or 1))
    sequential = mnistlab_throughput(model, batch_size, seconds, directory)
    parallel = workers_throughput(model, batch_size, seconds, directory, workers)
    fused = fused_throughput(model, batch_size, seconds, directory, configs)
    return GridBenchResult(configs, workers, reference_img_per_s, sequential, parallel, fused)


def run_bench(
    model: str = "tiny", batch_size: int = 128, seconds: float = 20.0, data_dir: Path | None = None
) -> BenchResult:
    directory = ensure_mnist(data_dir, log=lambda _: None)
    reference = reference_throughput(model, batch_size, seconds, directory)
    ours = mnistlab_throughput(model, batch_size, seconds, directory)
    return BenchResult(model, batch_size, torch.get_num_threads(), reference, ours)
