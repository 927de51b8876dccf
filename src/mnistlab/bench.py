"""`mnistlab bench`: the seeds' training pipeline and mnistlab's, side by side in one process.

Reference (what seed 000 does): torchvision `datasets.MNIST` + `RandomRotation(7)` + `ToTensor`
+ `Normalize` through a `DataLoader` with 2 workers, one PIL image at a time. mnistlab: the same
model, optimizer and augmentation strength on a device-resident uint8 tensor, augmented per
batch. Both train for the same wall-clock budget after a warm-up; throughput is train images/s.
"""

from __future__ import annotations

import gzip
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
    data = load_mnist(data_dir, download=False)
    images, labels = data.images[:60_000], data.labels[:60_000]
    generator = torch.Generator().manual_seed(0)
    augment = AugmentConfig(rotate_deg=ROTATION_DEG)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], batch_size):
            index = order[start : start + batch_size]
            yield images[index], labels[index]

    torch.manual_seed(0)
    model = create_model(model_name)
    steps = _train_steps(
        model, _forever(batches), lambda x: augment_batch(normalize(x), augment, generator)
    )
    return _timed(steps, seconds)


def run_bench(
    model: str = "tiny", batch_size: int = 128, seconds: float = 20.0, data_dir: Path | None = None
) -> BenchResult:
    directory = ensure_mnist(data_dir, log=lambda _: None)
    reference = reference_throughput(model, batch_size, seconds, directory)
    ours = mnistlab_throughput(model, batch_size, seconds, directory)
    return BenchResult(model, batch_size, torch.get_num_threads(), reference, ours)
