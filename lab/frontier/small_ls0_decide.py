"""The small-ls0 rule (lab/frontier/small-ls0.toml), applied: a recipe takes label
smoothing 0 only if its 5-seed val mean without smoothing is not below the clean budgets store's
val mean for it. Val only decides; test figures are printed after the verdict, for the record.

    python lab/frontier/small_ls0_decide.py > lab/frontier/small-ls0-decision.txt
"""

import statistics

from mnistlab.experiments.store import RunStore


def runs(url: str, recipe: str) -> list:
    store = RunStore(url, heartbeat=False)
    records = store.records(store.study("budgets", create=False))
    found = [r for r in records if r.state == "finished" and r.config["name"] == f"budget_{recipe}"]
    return sorted(found, key=lambda r: r.seed)


def figures(label: str, records: list, key: str) -> float:
    values = [r.summary[key] for r in records]
    seeds = ", ".join(f"{v:.2f}" for v in values)
    mean, std = statistics.mean(values), statistics.stdev(values)
    print(f"  {label:<22} {key:<8} {mean:.3f} ± {std:.3f}  ({seeds})")
    return mean


for recipe in ("r4k", "r2k"):
    clean = runs("sqlite:///lab/budgets/clean/budgets.db", recipe)
    ls0 = runs("sqlite:///lab/frontier/small-ls0.db", recipe)
    assert [r.seed for r in clean] == [0, 1, 2, 3, 4], recipe
    if [r.seed for r in ls0] != [0, 1, 2, 3, 4]:  # the rule needs all five seeds
        print(f"{recipe}: finished seeds {[r.seed for r in ls0]} of 0-4: no verdict")
        continue
    assert all(r.config["label_smoothing"] == 0.0 for r in ls0)
    print(f"{recipe}:")
    before = figures("recipe (smoothing 0.03)", clean, "val_acc")
    after = figures("label smoothing 0", ls0, "val_acc")
    print(
        f"  rule: val {after:.3f} {'>=' if after >= before else '<'} {before:.3f} -> "
        f"{'ADOPT label_smoothing 0' if after >= before else 'keep 0.03'}"
    )
    figures("recipe (smoothing 0.03)", clean, "test_acc")
    figures("label smoothing 0", ls0, "test_acc")
