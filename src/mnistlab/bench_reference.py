"""The reference side of `mnistlab bench`: seed 000's training pipeline, written out on its own.

Kept apart from mnistlab on purpose: nothing here imports mnistlab (tests/test_bench.py checks
it), so the reference cannot pick up mnistlab's cheaper dropout, its batching or its step. What
it does is what seed 000's `train.py` does per step, in the plainest PyTorch:

* model: TinyMNISTNet as the seed writes it: six conv3x3 → BatchNorm2d → ReLU(inplace) →
  nn.Dropout(0.05) blocks (no conv bias under BN), two 2x2 max-pools, a 1x1 conv and a global
  average pool (15,882 parameters, the same shapes as mnistlab's `tiny`);
* data: torchvision `datasets.MNIST`, a `Subset` of the first 50k training images, PIL
  transforms `RandomRotation(7)` → `ToTensor` → `Normalize` applied one image at a time in a
  `DataLoader` with 2 worker processes (the seed's `num_workers`), shuffled, pinned on CUDA;
* step: `zero_grad(set_to_none=True)`, forward, `CrossEntropyLoss`, backward, SGD (momentum
  0.9) step, `OneCycleLR.step()` every batch, then `loss.item()` and the correct count's
  `.item()` for the epoch's running figures, as the seed's loop does.

(The seed's own augmentation is `RandomAffine(5, translate=(0.02, 0.02))` in the copy of its
`train.py` read for this; `RandomRotation(7)` is the same kind of PIL affine warp and what the
benchmark has always used.)
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
ROTATION_DEG = 7.0
TRAIN_SIZE = 50_000  # the seed trains on a Subset of the first 50k official training images
WORKERS = 2  # the seed's DataLoader num_workers (0 only on Windows)


class SeedTinyMNISTNet(nn.Module):
    """Seed 000's TinyMNISTNet with BN and dropout on: 1→8→12 | pool | 12→16→16 | pool |
    16→24→32 | 1x1 conv 32→10 | global average pool."""

    def __init__(self, dropout_p: float = 0.05) -> None:
        super().__init__()
        widths = (1, 8, 12, 16, 16, 24, 32)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout_p),
            )
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.pool = nn.MaxPool2d(2, 2)
        self.classifier = nn.Conv2d(widths[-1], 10, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in (1, 3):  # after conv2 and conv4: 28 → 14 → 7
                x = self.pool(x)
        x = F.adaptive_avg_pool2d(self.classifier(x), 1)
        return x.view(x.size(0), -1)


def stage_mnist(files: Mapping[str, Path], root: Path) -> Path:
    """Write the four IDX files (gzipped or not) uncompressed where torchvision looks for them:
    `root/MNIST/raw/<name>`. Returns `root`."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        payload = Path(path).read_bytes()
        if payload[:2] == b"\x1f\x8b":
            payload = gzip.decompress(payload)
        (raw / name).write_bytes(payload)
    return root


def seed_loader(
    root: Path, batch_size: int, *, pin_memory: bool = False, seed: int = 0
) -> torch.utils.data.DataLoader:
    """The seed's training DataLoader over a torchvision root made by `stage_mnist`."""
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise ImportError(
            "the reference pipeline needs torchvision: pip install 'mnistlab[bench]'"
        ) from None
    transform = transforms.Compose(
        [
            transforms.RandomRotation(ROTATION_DEG),
            transforms.ToTensor(),
            transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
        ]
    )
    full = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    train = torch.utils.data.Subset(full, list(range(TRAIN_SIZE)))
    return torch.utils.data.DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        num_workers=WORKERS,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )


class SeedTrainer:
    """Seed 000's training loop, resumable: `train(images)` runs whole steps until at least
    `images` images were trained and returns how many; epochs roll over as the seed's do (a
    new DataLoader iterator, whose worker processes start again)."""

    def __init__(
        self,
        root: Path,
        batch_size: int,
        device: torch.device,
        *,
        epochs: int,
        lr: float = 0.05,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.loader = seed_loader(root, batch_size, pin_memory=device.type == "cuda", seed=seed)
        self.model = SeedTinyMNISTNet().to(device)
        # the seed's sgd_onecycle config: SGD momentum 0.9 (no nesterov, no weight decay) and
        # OneCycleLR(pct_start=0.2, div_factor=5, final_div_factor=20) stepped every batch
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=lr,
            steps_per_epoch=len(self.loader),
            epochs=epochs,
            pct_start=0.2,
            div_factor=5.0,
            final_div_factor=20.0,
        )
        self.criterion = nn.CrossEntropyLoss()
        self.batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self.batches)
        except StopIteration:  # a new epoch, as `for xb, yb in loader` starts it
            self.batches = iter(self.loader)
            return next(self.batches)

    def train(self, images: int) -> int:
        self.model.train()
        done = 0
        while done < images:
            xb, yb = self._next_batch()
            xb, yb = xb.to(self.device), yb.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(xb)
            loss = self.criterion(logits, yb)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.loss_sum += loss.item() * xb.size(0)
            self.correct += (logits.argmax(dim=1) == yb).sum().item()
            self.seen += xb.size(0)
            done += xb.size(0)
        return done

    def timed(self, images: int) -> tuple[int, float]:
        """(images trained, seconds) for `train(images)`; each `.item()` already waits for the
        device, so the clock stops when the work is done."""
        started = time.perf_counter()
        done = self.train(images)
        return done, time.perf_counter() - started
