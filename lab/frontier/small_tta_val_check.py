"""Would rotation TTA (+-10 deg, as r8k and speedrun use) help r4k, r2k, r1k? Validation only:
each run's val-chosen weights (best.pt) evaluated on its val split without and with TTA. Test is
not evaluated here (the recipes' test figures are those of the runs, measured once).

    python lab/frontier/small_tta_val_check.py \
        > lab/frontier/small-tta-val-check.txt
"""

import statistics
from pathlib import Path

import torch

from mnistlab.data import load_mnist, split_mnist
from mnistlab.engine.loop import evaluate
from mnistlab.experiments.store import RunStore
from mnistlab.run.checkpoint import load_checkpoint

# the runs of lab/frontier/budgets-small.db (r1k's TTA re-run has its own store)
store = RunStore("sqlite:///lab/frontier/budgets-small.db", heartbeat=False)
records = store.records(store.study("budgets", create=False))

torch.set_num_threads(1)
data = load_mnist(None, download=False)
print("recipe seed val val_tta delta")
for recipe in ("r4k", "r2k", "r1k"):
    deltas = []
    runs = sorted(
        (r for r in records if r.config["name"] == f"budget_{recipe}"), key=lambda r: r.seed
    )
    for best in (Path(r.run_dir) / "best.pt" for r in runs):
        loaded = load_checkpoint(best)
        config = loaded.config
        splits = split_mnist(data, val_size=config.val_size, seed=config.split_seed)
        plain = evaluate(loaded.model, splits.val_images, splits.val_labels, batch_size=500).acc
        tta = evaluate(
            loaded.model, splits.val_images, splits.val_labels, batch_size=500,
            tta_angles=(-10.0, 10.0),
        ).acc  # fmt: skip
        deltas.append(tta - plain)
        print(recipe, config.seed, f"{plain:.2f}", f"{tta:.2f}", f"{tta - plain:+.2f}")
    print(f"{recipe}: TTA on val {statistics.mean(deltas):+.3f} ± {statistics.stdev(deltas):.3f}")
