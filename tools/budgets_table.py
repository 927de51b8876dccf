"""docs/accuracy.md's budget table from the `budgets` suite, and the val-best shipped weights.

    python tools/budgets_table.py --store sqlite:///runs/budgets.db [--ship]
    python tools/budgets_table.py --store sqlite:///runs/speedrun.db --suite speedrun \
        --recipes speedrun [--ship]

Prints, per recipe: test accuracy mean ± std over the seeds, the worst seed, val accuracy,
params, epochs, wall time per run and the device; for a recipe that monitors test accuracy per
epoch (r8k), the lowest of the last 3 epochs over all seeds; each criterion of the recipe's goal
(`recipes.Goal`) met, or the distance left. With --ship, copies the best.pt of
the seed with the highest *validation* accuracy of each recipe (ties: the lower seed; test
accuracy is never looked at) into src/mnistlab/pretrained/ as NAME.pt with NAME.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from mnistlab.experiments.store import RunStore
from mnistlab.recipes import get_recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_run import ship_run  # noqa: E402  (a sibling script, not a package)


def wall(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def recipe_of(config_name: str) -> str:
    """`budget_r8k` (suite budgets) -> r8k; `speedrun_speednet_6ep` (suite speedrun) -> speedrun."""
    if config_name.startswith("budget_"):
        return config_name.removeprefix("budget_")
    return config_name.split("_", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///runs/budgets.db")
    parser.add_argument("--suite", default="budgets")
    parser.add_argument("--recipes", default="r20k,r8k,r5k,r4k,r2k,r1k", help="comma-separated")
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args()
    store = RunStore(args.store, heartbeat=False)
    records = store.records(store.study(args.suite, create=False))
    by_recipe: dict[str, list] = {}
    for record in records:
        if record.state == "finished":
            by_recipe.setdefault(recipe_of(record.config["name"]), []).append(record)
    print(
        "| recipe | params | epochs | seeds | test acc mean ± std | worst seed "
        "| val acc mean ± std | last-3-epoch test min | wall time per run | device | goal "
        "| met? |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    tabled: dict[str, list] = {}  # recipe -> its runs by seed, in table order
    for name in args.recipes.split(","):
        runs = sorted(by_recipe.get(name, []), key=lambda r: r.seed)
        if not runs:
            continue
        recipe = get_recipe(name)
        tests = [r.summary["test_acc"] for r in runs]
        vals = [r.summary["val_acc"] for r in runs]
        seconds = [r.summary["seconds"] for r in runs]
        worst = min(runs, key=lambda r: r.summary["test_acc"])
        last3 = [row.get("test_acc") for r in runs for row in r.epochs[-3:]]
        last3 = [value for value in last3 if value is not None]
        checks = recipe.goal.check(tests, min(last3) if last3 else None, seconds)
        met = "yes" if all(c.met for c in checks) else "**no**: " + "; ".join(map(str, checks))
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        val_std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        print(
            f"| {name} | {runs[0].summary['params']:,} | {runs[0].summary['epochs']} "
            f"| {', '.join(str(r.seed) for r in runs)} "
            f"| **{statistics.mean(tests):.2f} ± {std:.2f}** "
            f"| {worst.summary['test_acc']:.2f} (seed {worst.seed}) "
            f"| {statistics.mean(vals):.2f} ± {val_std:.2f} "
            f"| {f'{min(last3):.2f}' if last3 else 'not measured'} "
            f"| {wall(statistics.mean(seconds))} | {runs[0].summary['device']} "
            f"| {recipe.goal} | {met} |"
        )
        tabled[name] = runs
    print()
    for name, runs in tabled.items():
        seeds = ", ".join(f"{r.summary['test_acc']:.2f}" for r in runs)
        line = f"- {name}, test % by seed {', '.join(str(r.seed) for r in runs)}: {seeds}"
        last3 = [[row.get("test_acc") for row in r.epochs[-3:]] for r in runs]
        if all(None not in values for values in last3):  # test recorded per epoch (r8k)
            lows = ", ".join(f"{min(values):.2f}" for values in last3)
            line += f"; lowest of its last 3 epochs: {lows}"
        print(line)
    if args.ship:
        for name, runs in tabled.items():
            ship(name, args.suite, runs)


def ship(name: str, suite: str, runs: list) -> None:
    chosen = max(runs, key=lambda r: (r.summary["val_acc"], -r.seed))
    ship_run(
        name,
        Path(chosen.run_dir),
        f"recipe {name} ({get_recipe(name).description}), seed {chosen.seed}: "
        f"the seed with the highest validation accuracy of the `{suite}` suite",
        seeds_compared_on_val={str(r.seed): r.summary["val_acc"] for r in runs},
    )
    print(f"  seed {chosen.seed} of {len(runs)}, from {chosen.run_dir}")


if __name__ == "__main__":
    main()
