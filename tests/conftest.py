"""Shared fixtures: real MNIST from ../shared/datasets/mnist, small splits so tests take seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "datasets" / "mnist"
if "MNISTLAB_DATA" not in os.environ:
    # CI has ../shared beside the clone; a user's machine has the cache `mnistlab data` filled
    if SHARED_MNIST.is_dir():
        os.environ["MNISTLAB_DATA"] = str(SHARED_MNIST)
    else:
        from mnistlab.data import default_data_dir

        os.environ["MNISTLAB_DATA"] = str(default_data_dir())
# keep tests on the CPU and deterministic wherever they run
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = Path(os.environ["MNISTLAB_DATA"])
    if not path.is_dir():
        pytest.fail(f"MNIST test data not found at {path}; set MNISTLAB_DATA")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from mnistlab.data import load_mnist

    return load_mnist(mnist_dir, download=False)


@pytest.fixture(scope="session")
def small_splits(mnist):
    """1,000 training and 1,000 validation images: enough to learn something in one epoch."""
    from mnistlab.data import split_mnist

    return split_mnist(mnist, val_size=1000, seed=0, train_subset=1000)
