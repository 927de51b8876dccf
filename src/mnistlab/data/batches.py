"""Mini-batches as index slices of whole-dataset tensors (the airbench way).

The data stays where it is (CPU or GPU); a batch is ``images[idx]``, a single gather, so there
are no worker processes, collate functions or host-device copies per batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mnistlab.errors import ConfigError

__all__ = ["iterate_batches", "num_batches"]


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches :func:`iterate_batches` yields for ``n`` samples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches covering every sample once per call.

    With ``shuffle`` the order is ``torch.randperm(n, generator=generator)`` (drawn on the
    generator's device, then moved to the data's device); without it batches are plain slices
    (views, no copy). ``drop_last`` drops a final batch smaller than ``batch_size``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = images_u8.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} images but {labels.shape[0]} labels")
    stop = n - n % batch_size if drop_last else n
    if not shuffle:
        for start in range(0, stop, batch_size):
            yield images_u8[start : start + batch_size], labels[start : start + batch_size]
        return
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=device).to(images_u8.device)
    for start in range(0, stop, batch_size):
        idx = perm[start : start + batch_size]
        yield images_u8[idx], labels[idx]
