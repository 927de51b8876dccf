"""docs/accuracy.md's budget table from the `budgets` suite, and the val-best shipped weights.

    python tools/budgets_table.py --store sqlite:///runs/budgets.db [--ship]

Prints, per recipe: test accuracy mean ± std over the seeds, the worst seed, val accuracy,
params, epochs, wall time per run and the device; for a recipe that monitors test accuracy per
epoch (r8k), the lowest of the last 3 epochs over all seeds. With --ship, copies the best.pt of
the seed with the highest *validation* accuracy of each recipe (ties: the lower seed; test
accuracy is never looked at) into src/mnistlab/pretrained/ as NAME.pt with NAME.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
from pathlib import Path

from mnistlab.experiments.store import RunStore
from mnistlab.recipes import get_recipe

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "mnistlab" / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///runs/budgets.db")
    parser.add_argument("--suite", default="budgets")
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args()
    store = RunStore(args.store, heartbeat=False)
    records = store.records(store.study(args.suite, create=False))
    by_recipe: dict[str, list] = {}
    for record in records:
        if record.state == "finished":
            by_recipe.setdefault(record.config["name"].removeprefix("budget_"), []).append(record)
    print(
        "| recipe | params | epochs | seeds | test acc mean ± std | worst seed "
        "| val acc mean ± std | last-3-epoch test min | wall time per run | device | goal |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("r20k", "r8k", "r5k"):
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
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        val_std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        print(
            f"| {name} | {runs[0].summary['params']:,} | {runs[0].summary['epochs']} "
            f"| {', '.join(str(r.seed) for r in runs)} "
            f"| **{statistics.mean(tests):.2f} ± {std:.2f}** "
            f"| {worst.summary['test_acc']:.2f} (seed {worst.seed}) "
            f"| {statistics.mean(vals):.2f} ± {val_std:.2f} "
            f"| {f'{min(last3):.2f}' if last3 else 'not measured'} "
            f"| {statistics.mean(seconds) / 60:.1f} min | {runs[0].summary['device']} "
            f"| {recipe.goal} |"
        )
        if args.ship:
            ship(name, runs)


def ship(name: str, runs: list) -> None:
    chosen = max(runs, key=lambda r: (r.summary["val_acc"], -r.seed))
    source = Path(chosen.run_dir) / "best.pt"
    target = PRETRAINED / f"{name}.pt"
    shutil.copyfile(source, target)
    summary = chosen.summary
    record = {
        "name": name,
        "description": f"recipe {name} ({get_recipe(name).description}), seed {chosen.seed}: "
        "the seed with the highest validation accuracy of the `budgets` suite",
        "model": summary["model"],
        "params": summary["params"],
        "best_epoch": summary["best_epoch"],
        "selected_on": "val",
        "val_acc": summary["val_acc"],
        "test_acc": summary["test_acc"],
        "val_size": summary["val_size"],
        "test_size": summary["test_size"],
        "train_size": summary["train_size"],
        "seed": chosen.seed,
        "seeds_compared_on_val": {str(r.seed): r.summary["val_acc"] for r in runs},
        "seconds": summary["seconds"],
        "device": summary["device"],
        "torch": summary["torch"],
        "mnistlab": summary["mnistlab"],
        "config_hash": summary["config_hash"],
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "config": chosen.config,
    }
    (PRETRAINED / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"shipped {name}: seed {chosen.seed} (val {summary['val_acc']:.2f}%) from {source}")


if __name__ == "__main__":
    main()
