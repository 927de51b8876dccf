"""Classify preprocessed 28x28 digits, and gather the image files a command line names."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistlab.engine.loop import predict_logits

__all__ = ["IMAGE_SUFFIXES", "Prediction", "expand_inputs", "predict"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class Prediction:
    digit: int
    prob: float
    top3: tuple[tuple[int, float], ...]
    probs: tuple[float, ...]  # all 10 class probabilities

    def as_dict(self) -> dict[str, Any]:
        return {
            "digit": self.digit,
            "prob": self.prob,
            "top3": [{"digit": d, "prob": p} for d, p in self.top3],
            "probs": list(self.probs),
        }


def predict(model: nn.Module, images: np.ndarray | torch.Tensor) -> list[Prediction]:
    """uint8 [N, 28, 28] white-on-black digits (see `preprocess`) -> one Prediction each."""
    batch = torch.as_tensor(np.asarray(images, dtype=np.uint8))
    if batch.ndim == 2:
        batch = batch.unsqueeze(0)
    if batch.ndim != 3 or tuple(batch.shape[1:]) != (28, 28):
        raise ValueError(f"expected uint8 [N, 28, 28] images, got {list(batch.shape)}")
    if batch.shape[0] == 0:
        return []
    device = next(model.parameters()).device
    probs = predict_logits(model, batch.to(device)).exp().cpu()
    top = probs.topk(3, dim=1)
    results = []
    for row, values, indices in zip(probs, top.values, top.indices, strict=True):
        top3 = tuple((int(i), float(v)) for i, v in zip(indices, values, strict=True))
        results.append(
            Prediction(
                digit=top3[0][0],
                prob=top3[0][1],
                top3=top3,
                probs=tuple(float(p) for p in row),
            )
        )
    return results


def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, directories (their image files, sorted) and globs -> (paths, problems).

    A problem is (the item as given, a one-line message naming it).
    """
    paths: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                problems.append(
                    (item, f"{item}: directory has no {'/'.join(IMAGE_SUFFIXES)} files")
                )
            paths.extend(found)
        elif path.exists() or not glob.has_magic(item):
            # a missing plain path is kept: reading it reports "no such file" in its turn
            paths.append(path)
        else:
            # a quoted glob (the shell did not expand it), e.g. 'digits/**/*.png'
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(item), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                problems.append((item, f"{item}: no file matches"))
            paths.extend(files)
    # the same file named twice (a glob and a path) is predicted once
    unique = list(dict.fromkeys(paths))
    return unique, problems
