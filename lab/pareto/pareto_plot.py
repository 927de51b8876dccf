"""docs/pareto.png: params vs test accuracy, ours (honest, mean ± std) beside public figures.

    python lab/pareto/pareto_plot.py [--points lab/pareto/points.toml] [--out docs/pareto.png]

Reads the points file (each of ours names the raw output its figure is copied from; each public
one its protocol), prints the table docs/accuracy.md shows, and draws the plot: ours as filled
circles with error bars, the public figures as open squares labelled with their protocol.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=Path, default=ROOT / "lab/pareto/points.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/pareto.png")
    args = parser.parse_args()
    points = tomllib.loads(args.points.read_text())
    ours, public = points["ours"], points["public"]

    print("| who | params | test acc | protocol | source |")
    print("|---|---|---|---|---|")
    for row in sorted(ours, key=lambda r: r["params"]):
        figure = (
            f"{row['mean']:.2f} ± {row['std']:.2f}" if row["seeds"] > 1 else f"{row['mean']:.2f}"
        )
        protocol = f"honest: val-chosen epoch, test once, {row['seeds']} seed(s)"
        print(
            f"| ours: {row['label']} | {row['params']:,} | {figure} | {protocol} "
            f"| {row['source']} |"
        )
    for row in sorted(public, key=lambda r: r["params"]):
        print(
            f"| {row['label']} | {row['params']:,} | {row['acc']:.2f} | {row['protocol']} "
            f"| {row['source']} |"
        )

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for row in ours:
        ax.errorbar(row["params"], row["mean"], yerr=row["std"], fmt="o", color="tab:blue",
                    capsize=3)  # fmt: skip
        ax.annotate(f"{row['label']} (n={row['seeds']})", (row["params"], row["mean"]),
                    fontsize=7, xytext=(4, 4), textcoords="offset points")  # fmt: skip
    for row in public:
        ax.plot(row["params"], row["acc"], "s", mfc="none", color="tab:gray")
        ax.annotate(
            f"{row['label']}: {row['protocol']}",
            (row["params"], row["acc"]),
            fontsize=6,
            color="dimgray",
            xytext=(4, -9),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Accuracy under a parameter budget: ours honest (blue, mean ± std) vs published")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
