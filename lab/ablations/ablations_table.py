"""docs/accuracy.md's ablation table from the `ablations` suite: val accuracy of each variant and
its difference from the recipe's `full` run (with TTA in the recipe, the val figure with TTA).

    python lab/ablations/ablations_table.py --store sqlite:///lab/ablations/ablations.db
"""

from __future__ import annotations

import argparse

from mnistlab.experiments.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///lab/ablations/ablations.db")
    args = parser.parse_args()
    store = RunStore(args.store, heartbeat=False)
    val: dict[str, dict[str, float]] = {}
    for record in store.records(store.study("ablations", create=False)):
        if record.state != "finished":
            continue
        recipe, variant = record.config["name"].split("_", 1)
        summary = record.summary
        # the figure the run's own protocol reports: with TTA when its config has TTA
        val.setdefault(recipe, {})[variant] = summary.get("val_acc_tta") or summary["val_acc"]
    variants = list(dict.fromkeys(v for by_variant in val.values() for v in by_variant))
    print("| recipe | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    for recipe, by_variant in val.items():
        full = by_variant["full"]
        cells = [
            "–" if v not in by_variant else
            f"{by_variant[v]:.2f}" if v == "full" else
            f"{by_variant[v]:.2f} ({by_variant[v] - full:+.2f})"
            for v in variants
        ]  # fmt: skip
        print(f"| {recipe} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
