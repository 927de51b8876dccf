"""The report's figures (matplotlib, Agg backend: no display needed), each saved as a PNG.

Every figure has a title, labelled axes and a legend placed outside the plotting area, so a
reader can understand it without the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports run on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    MaxNLocator,
    NullFormatter,
)

DPI = 100
COLORS = plt.get_cmap("tab10").colors


@dataclass
class Curve:
    """One config's per-epoch metric: mean over seeds, std where there are several."""

    label: str
    epochs: list[int]
    mean: list[float]
    std: list[float]  # 0 where a single seed


@dataclass
class Point:
    label: str
    params: int
    mean: float
    std: float
    group: str  # legend entry (the suite)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


# accuracy axes plot the error (100 - acc) on a log scale, labelled as accuracy: 99 → 99.5 gets
# as much room as 90 → 95, so a 26% run and three 99.x% runs are all readable on one axis
_ERROR_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 30, 50, 70, 90)
MIN_ERROR = 0.01  # 100% accuracy would be log(0)
ACC_LABEL = "accuracy (%), log-scaled error"


def error(acc: float) -> float:
    return max(100.0 - acc, MIN_ERROR)


def _accuracy_axis(ax: plt.Axes, accuracies: list[float]) -> None:
    errors = [error(a) for a in accuracies if math.isfinite(a)] or [1.0]
    low, high = min(errors) / 1.5, min(max(errors) * 1.5, 100.0)
    ax.set_yscale("log")
    ax.set_ylim(high, low)  # inverted: better accuracy is higher up
    ticks = [t for t in _ERROR_TICKS if low <= t <= high] or [min(errors)]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda e, _: f"{100 - e:.4g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def learning_curves(metrics: dict[str, list[Curve]], path: Path, title: str) -> Path:
    """A 2×2 figure (val acc, val loss, train acc, train loss) with one legend below it."""
    panels = [
        ("val_acc", "Validation accuracy", ACC_LABEL),
        ("val_loss", "Validation loss", "cross-entropy (log scale)"),
        ("train_acc", "Training accuracy (augmented batches)", ACC_LABEL),
        ("train_loss", "Training loss", "cross-entropy (log scale)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax, (key, panel_title, ylabel) in zip(axes.flat, panels, strict=True):
        curves = metrics.get(key, [])
        accuracy = key.endswith("acc")
        for index, curve in enumerate(curves):
            color = COLORS[index % len(COLORS)]
            mean, std = np.array(curve.mean), np.array(curve.std)
            low, high = mean - std, mean + std
            if accuracy:  # plotted as error: the band's edges swap
                mean, low, high = (np.maximum(100.0 - v, MIN_ERROR) for v in (mean, high, low))
            ax.plot(curve.epochs, mean, marker="o", ms=3.5, lw=1.8, color=color, label=curve.label)
            if std.any():
                ax.fill_between(curve.epochs, low, high, color=color, alpha=0.15)
        ax.set_title(panel_title, fontsize=12)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if accuracy:
            _accuracy_axis(ax, [v for c in curves for v in c.mean])
        else:
            ax.set_yscale("log")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=14)
    fig.tight_layout(rect=(0, 0.06 + 0.025 * math.ceil(len(labels) / 2), 1, 0.97))
    if handles:
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=2 if len(labels) > 1 else 1,
            fontsize=10,
            frameon=False,
            title="config (mean over seeds; band = ± 1 std)",
        )
    return _save(fig, path)


def confusion_matrix_plot(matrix: np.ndarray, path: Path, title: str) -> Path:
    """Counts per (true, predicted) digit, log-coloured so single mistakes stay visible."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    shown = np.where(matrix > 0, matrix, np.nan)
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(matrix.max(), 2)))
    for true in range(10):
        for pred in range(10):
            count = int(matrix[true, pred])
            if count:
                dark = count > math.sqrt(max(matrix.max(), 1))
                ax.text(
                    pred,
                    true,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else ("#b00020" if true != pred else "black"),
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=11)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("test images (log scale); red = mistakes")
    return _save(fig, path)


def misclassified_grid(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    confidence: np.ndarray,
    path: Path,
    title: str,
    columns: int = 8,
) -> Path:
    """The given test digits with 'true → predicted (confidence)' above each.

    One mosaic image in one axes: 32 separate subplots take seconds to lay out.
    """
    count = len(images)
    rows = max(math.ceil(count / columns), 1)
    cell_w, cell_h, top = 36, 50, 20  # pixels per digit cell; 28×28 digit + room for its label
    mosaic = np.full((rows * cell_h, columns * cell_w), 255, dtype=np.uint8)
    fig, ax = plt.subplots(figsize=(columns * 1.45, rows * 1.95 + 0.5))
    for index in range(count):
        r, c = divmod(index, columns)
        y, x = r * cell_h + top, c * cell_w + (cell_w - 28) // 2
        mosaic[y : y + 28, x : x + 28] = 255 - images[index]  # dark ink on white
        ax.text(
            c * cell_w + cell_w / 2,
            r * cell_h + top - 2,
            f"true {true[index]} → {pred[index]}\n{100 * confidence[index]:.0f}% sure",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if not count:
        ax.text(mosaic.shape[1] / 2, mosaic.shape[0] / 2, "no mistakes", ha="center")
    ax.axis("off")
    ax.set_title(title, fontsize=12)
    return _save(fig, path)


def pareto_front(points: list[Point]) -> list[Point]:
    """Configs that no config with as few or fewer params beats on mean test accuracy."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.params, -p.mean)):
        if not front or point.mean > front[-1].mean:
            front.append(point)
    return front


def pareto_plot(
    points: list[Point], path: Path, budget: int, target: float, title: str
) -> tuple[Path, list[Point]]:
    """Params (log x) vs test accuracy (mean ± std); returns (path, Pareto front)."""
    fig, ax = plt.subplots(figsize=(11, 6.5))
    groups = sorted({p.group for p in points})
    for index, group in enumerate(groups):
        members = [p for p in points if p.group == group]
        means = np.array([p.mean for p in members])
        stds = np.array([p.std for p in members])
        errors = np.maximum(100.0 - means, MIN_ERROR)
        # asymmetric bars in error space: acc + std is a smaller error, acc - std a larger one
        lower = errors - np.maximum(100.0 - (means + stds), MIN_ERROR)
        upper = (100.0 - (means - stds)) - errors
        ax.errorbar(
            [p.params for p in members],
            errors,
            yerr=[lower, upper],
            fmt="o",
            ms=6,
            capsize=3,
            alpha=0.8,
            color=COLORS[index % len(COLORS)],
            label=f"suite {group}",
        )
    front = pareto_front(points)
    ax.step(
        [p.params for p in front],
        [error(p.mean) for p in front],
        where="post",
        color="black",
        lw=1.2,
        label="Pareto front",
    )
    for p in front:
        ax.annotate(
            f"{p.label} ({p.mean:.2f}%)",
            (p.params, error(p.mean)),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            # a white box keeps the label readable where it crosses a line
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    ax.axvline(budget, color="#b00020", ls="--", lw=1.2, label=f"budget: < {budget:,} params")
    ax.axhline(error(target), color="#2e7d32", ls=":", lw=1.5, label=f"target: {target:g}%")
    ax.set_xscale("log")
    xs = [p.params for p in points] + [budget]
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.tick_params(axis="x", which="minor", labelsize=8)
    _accuracy_axis(
        ax, [p.mean - p.std for p in points] + [p.mean + p.std for p in points] + [target]
    )
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds\n(log-scaled error)")
    ax.set_title(title, fontsize=12)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _save(fig, path), front
