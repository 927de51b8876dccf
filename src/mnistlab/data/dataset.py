"""MNIST as whole-dataset uint8 tensors, the train/val/test split and normalization.

The whole dataset is 55 MB as uint8, so it is kept as one tensor (on the GPU if wanted) and
batches are index slices: no Dataset/DataLoader, no per-sample Python, no PIL.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnistlab.data.idx import read_idx
from mnistlab.data.sources import FILES, ensure_mnist, find_files
from mnistlab.errors import ConfigError, DataError

__all__ = [
    "MEAN",
    "STD",
    "N_TRAIN",
    "N_TEST",
    "MnistTensors",
    "Splits",
    "load_mnist",
    "split_mnist",
    "normalize",
]

#: Mean and std of the official training pixels scaled to [0, 1] (the customary constants).
MEAN = 0.1307
STD = 0.3081
N_TRAIN = 60_000
N_TEST = 10_000


@dataclass(frozen=True)
class MnistTensors:
    """The full official dataset: the 60k training samples followed by the 10k test samples."""

    images: torch.Tensor  # uint8 [70000, 28, 28], official train (60k) then test (10k)
    labels: torch.Tensor  # int64 [70000]


@dataclass(frozen=True)
class Splits:
    """Train/validation/test tensors: images uint8 [N, 28, 28], labels int64 [N]."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def to(self, device: torch.device | str) -> Splits:
        """A new Splits with every tensor moved to ``device``."""
        return dataclasses.replace(
            self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)}
        )


def _read_pair(images_path: Path, labels_path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    # The md5 check already guarantees this for the official files; these checks only give a
    # clear message if that guarantee is ever bypassed.
    if images.shape != (n, 28, 28):
        raise DataError(f"{images_path}: shape {images.shape}, expected ({n}, 28, 28)")
    if labels.shape != (n,):
        raise DataError(f"{labels_path}: shape {labels.shape}, expected ({n},)")
    if labels.max() > 9:
        raise DataError(f"{labels_path}: labels outside 0..9")
    return images, labels


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> MnistTensors:
    """Load (downloading if needed and allowed) and verify MNIST; see :func:`ensure_mnist`."""
    files = find_files(ensure_mnist(data_dir, download=download))
    assert files is not None  # ensure_mnist returns only once all four files are there
    train_x, train_y = _read_pair(files[FILES[0]], files[FILES[1]], N_TRAIN)
    test_x, test_y = _read_pair(files[FILES[2]], files[FILES[3]], N_TEST)
    return MnistTensors(
        images=torch.from_numpy(np.concatenate([train_x, test_x])),
        labels=torch.from_numpy(np.concatenate([train_y, test_y]).astype(np.int64)),
    )


def split_mnist(
    data: MnistTensors, *, val_size: int = 10_000, seed: int = 0, train_subset: int | None = None
) -> Splits:
    """Split the official 60k training samples into train and validation; test = official 10k.

    A seeded permutation of the 60k is drawn on the CPU (same result on every machine); the
    first ``val_size`` indices are the validation set, the rest (in permutation order) the
    training set. ``train_subset=N`` keeps the first N training samples, so a smaller subset is
    always contained in a larger one with the same seed. The test set is never touched by the
    seed: it stays the official test set, in order.
    """
    if isinstance(val_size, bool) or not isinstance(val_size, int):
        raise ConfigError(f"val_size must be an integer in 1..{N_TRAIN - 1}, got {val_size!r}")
    if not 1 <= val_size <= N_TRAIN - 1:
        raise ConfigError(f"val_size must be in 1..{N_TRAIN - 1}, got {val_size}")
    n_train = N_TRAIN - val_size
    if train_subset is not None:
        if isinstance(train_subset, bool) or not isinstance(train_subset, int):
            raise ConfigError(
                f"train_subset must be an integer in 1..{n_train}, got {train_subset!r}"
            )
        if not 1 <= train_subset <= n_train:
            raise ConfigError(
                f"train_subset must be in 1..{n_train} (60000 - val_size {val_size}), "
                f"got {train_subset}"
            )
    if data.images.shape[0] != N_TRAIN + N_TEST or data.labels.shape[0] != N_TRAIN + N_TEST:
        raise DataError(
            f"expected {N_TRAIN + N_TEST} MNIST samples, got {data.images.shape[0]} images "
            f"and {data.labels.shape[0]} labels"
        )
    perm = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(seed))
    perm = perm.to(data.images.device)
    val_idx = perm[:val_size]
    train_idx = perm[val_size:]
    if train_subset is not None:
        train_idx = train_idx[:train_subset]
    return Splits(
        train_images=data.images[train_idx],
        train_labels=data.labels[train_idx],
        val_images=data.images[val_idx],
        val_labels=data.labels[val_idx],
        # clone(): a slice would keep the whole 70k tensor alive through the Splits.
        test_images=data.images[N_TRAIN:].clone(),
        test_labels=data.labels[N_TRAIN:].clone(),
    )


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 28, 28] (or [B, 1, 28, 28]) -> float32 [B, 1, 28, 28], ``(x/255 - MEAN)/STD``."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images_uint8.dtype}")
    x = images_uint8
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"normalize expects [B, H, W] or [B, 1, H, W], got {list(x.shape)}")
    # In-place ops on the fresh float copy: one allocation for the whole batch.
    return x.to(torch.float32).div_(255.0).sub_(MEAN).div_(STD)
