"""Device choice: `auto` takes CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from mnistlab.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available; use --device auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but MPS is not available; use --device auto")
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch threads (None: unchanged), restoring them after."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def reproducible_kernels(device: torch.device) -> Iterator[None]:
    """On CUDA, only deterministic cuDNN algorithms while training: the same seed twice gave
    different losses on an H100 (lab/gpu/smoke-3e3e42f.txt) with cuDNN's default choice."""
    if device.type != "cuda":
        yield
        return
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        yield
