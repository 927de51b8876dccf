"""Device choice: `auto` takes CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

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
