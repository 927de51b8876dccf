"""docs/speedrun-curve.png and its table: test accuracy vs wall seconds per run on 2 CPU cores.

    python lab/speedrun/speedrun_curve_plot.py

Reads the two committed stores: lab/speedrun/speedrun.db (the `speedrun` suite, 5 seeds) and
lab/speedrun/speedrun-curve.db (lab/speedrun/speedrun-curve.toml, 2 seeds per point). Each
point is one config: mean ± std over its seeds of the test accuracy (epoch chosen on val, test
measured once) against the mean of its runs' `seconds` (first step to written summary)."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mnistlab.experiments.store import RunStore  # noqa: E402
from mnistlab.experiments.suites import Suite, load_suite  # noqa: E402

HERE = Path(__file__).resolve().parent
# (store file, suite to load: a built-in name or a TOML path)
STORES = (("speedrun.db", "speedrun"), ("speedrun-curve.db", str(HERE / "speedrun-curve.toml")))


def current_hashes(suite: Suite) -> set[str]:
    """Config hashes of the suite as it is now: a run of an edited-away config is left out."""
    return {
        cell.config.replace(seed=seed).config_hash()
        for cell in suite.cells
        for seed in range(suite.seeds)
    }


def points() -> list[tuple[str, int, float, float, float]]:
    rows = []
    for file, suite_ref in STORES:
        suite = load_suite(suite_ref)
        wanted = current_hashes(suite)
        store = RunStore(f"sqlite:///{HERE / file}", heartbeat=False)
        by_name: dict[str, list] = {}
        for record in store.records(store.study(suite.name, create=False)):
            if record.state == "finished" and record.summary["config_hash"] in wanted:
                by_name.setdefault(record.config["name"], []).append(record)
        for name, runs in sorted(by_name.items()):
            tests = [r.summary["test_acc"] for r in runs]
            seconds = statistics.mean(r.summary["seconds"] for r in runs)
            std = statistics.stdev(tests) if len(tests) > 1 else 0.0
            rows.append((name, len(runs), seconds, statistics.mean(tests), std))
    return sorted(rows, key=lambda row: row[2])


def main() -> None:
    rows = points()
    print("| config | seeds | wall s per run | test acc mean ± std |")
    print("|---|---|---|---|")
    for name, seeds, seconds, mean, std in rows:
        print(f"| {name} | {seeds} | {seconds:.1f} | {mean:.2f} ± {std:.2f} |")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, seeds, seconds, mean, std in rows:
        color = "tab:red" if name.startswith("speedrun_") else "tab:blue"
        ax.errorbar(seconds, mean, yerr=std, fmt="o", color=color, capsize=3)
        ax.annotate(f"{name} (n={seeds})", (seconds, mean), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.axhline(99.4, color="gray", lw=0.8, ls="--")
    ax.axvline(45, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("wall seconds per run (2 CPU cores, one run at a time)")
    ax.set_ylabel("test accuracy % (epoch chosen on val)")
    ax.set_title("Time to 99.4%: accuracy vs seconds (red: the speedrun suite, 5 seeds)")
    fig.tight_layout()
    out = HERE.parents[1] / "docs" / "speedrun-curve.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out.relative_to(HERE.parents[1])}")


if __name__ == "__main__":
    main()
