"""Does the clean `grid budgets` store reproduce the runs the docs' table was built from?

Per recipe and seed: the val-chosen epoch, val and test accuracy of the clean store beside those
of the earlier store each row came from (r8k: r8k-candidate.db; r4k, r2k: budgets-small.db; r1k:
budgets-r1k-tta.db). r20k and r5k came from a store of commit 75f43fe that was not kept: their
earlier per-seed test figures are the ones docs/accuracy.md printed, their val figures those the
shipped r20k.json / r5k.json compared.

    python lab/budgets/clean/compare_earlier.py \
        > lab/budgets/clean/compare-earlier.txt
"""

import json
from pathlib import Path

from mnistlab.experiments.store import RunStore

FRONTIER = "sqlite:///lab/frontier"
EARLIER_STORES = {
    "r8k": (f"{FRONTIER}/r8k-candidate.db", "r8k_candidate"),
    "r4k": (f"{FRONTIER}/budgets-small.db", "budgets"),
    "r2k": (f"{FRONTIER}/budgets-small.db", "budgets"),
    "r1k": (f"{FRONTIER}/budgets-r1k-tta.db", "budgets"),
}
# docs/accuracy.md before this store (commit 3037b7d): "Per seed (test %)"
EARLIER_TEST = {
    "r20k": [99.64, 99.58, 99.63, 99.56, 99.63],
    "r5k": [99.35, 99.37, 99.31, 99.34, 99.34],
}
PRETRAINED = Path(__file__).resolve().parents[3] / "src/mnistlab/pretrained"


def by_seed(url: str, suite: str, recipe: str) -> dict[int, dict]:
    store = RunStore(url, heartbeat=False)
    records = store.records(store.study(suite, create=False))

    def of_recipe(name: str) -> bool:  # budget_r2k, not budget_r20k; r8k_ls0_... (a candidate)
        return name == f"budget_{recipe}" or name.startswith(f"{recipe}_")

    return {
        r.seed: {**r.summary, "last3": [row.get("test_acc") for row in r.epochs[-3:]]}
        for r in records
        if r.state == "finished" and of_recipe(r.config["name"])
    }


def same_run(now: dict, before: dict) -> bool:
    """Store against store: the same floats, epoch and last-3 figures; against published
    figures (2 decimals, no epoch): the same figures as printed."""
    if "best_epoch" not in before:
        return all(round(now[k], 2) == round(before[k], 2) for k in ("val_acc", "test_acc"))
    keys = ("best_epoch", "val_acc", "test_acc", "last3")
    return all(now[key] == before[key] for key in keys)


def main() -> None:
    clean = "sqlite:///lab/budgets/clean/budgets.db"
    print("recipe seed | clean store: epoch val test | earlier: epoch val test | same?")
    for recipe in ("r20k", "r8k", "r5k", "r4k", "r2k", "r1k"):
        now = by_seed(clean, "budgets", recipe)
        if recipe in EARLIER_STORES:
            before = by_seed(*EARLIER_STORES[recipe], recipe)
        else:  # only the figures that were published or shipped
            compared = json.loads((PRETRAINED / f"{recipe}.json").read_text())
            val = compared["seeds_compared_on_val"]
            before = {
                seed: {"val_acc": val[str(seed)], "test_acc": test}
                for seed, test in enumerate(EARLIER_TEST[recipe])
            }
        verdicts = []
        for seed in sorted(set(now) | set(before)):
            a, b = now.get(seed), before.get(seed)
            cells = [
                f"{x.get('best_epoch', '?')} {x['val_acc']:.2f} {x['test_acc']:.2f}" if x else "-"
                for x in (a, b)
            ]
            verdicts.append(bool(a and b and same_run(a, b)))
            print(f"{recipe} {seed} | {cells[0]} | {cells[1]} | {'yes' if verdicts[-1] else 'NO'}")
        print(f"{recipe}: {'every seed the same' if verdicts and all(verdicts) else 'differs'}")


if __name__ == "__main__":
    main()
