"""Ship one run's val-chosen weights inside the package: src/mnistlab/pretrained/NAME.pt + .json.

    python tools/ship_run.py default artifacts/default-ship \
        --description "seed-000 model `tiny` trained with the default recipe (...)"

Copies RUN_DIR/best.pt (the epoch chosen on validation) and writes NAME.json from the run's own
summary.json and config.toml: figures as the run measured them, sha256 of the copied file.
(Recipes are shipped by tools/budgets_table.py --ship, which picks the seed on val and calls
ship_run.)"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from mnistlab.config import TrainConfig

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "mnistlab" / "pretrained"


def ship_run(
    name: str,
    run_dir: Path,
    description: str,
    *,
    seeds_compared_on_val: dict[str, float] | None = None,
) -> None:
    """Copy RUN_DIR/best.pt to pretrained/NAME.pt and write NAME.json from the run's own files."""
    summary = json.loads((run_dir / "summary.json").read_text())
    config = TrainConfig.from_toml(run_dir / "config.toml")
    target = PRETRAINED / f"{name}.pt"
    shutil.copyfile(run_dir / "best.pt", target)
    record = {
        "name": name,
        "description": description,
        **{key: summary[key] for key in ("model", "params", "best_epoch")},
        "selected_on": "val",
        **{key: summary[key] for key in ("val_acc", "test_acc", "val_size", "test_size")},
        # with TTA: val accuracy with it (what `eval` re-measures); the epoch was chosen without
        **({"val_acc_tta": summary["val_acc_tta"]} if summary.get("val_acc_tta") else {}),
        **{key: summary[key] for key in ("train_size", "seed")},
        **({"seeds_compared_on_val": seeds_compared_on_val} if seeds_compared_on_val else {}),
        **{key: summary[key] for key in ("seconds", "device", "torch")},
        **{key: summary[key] for key in ("mnistlab", "config_hash")},
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "config": config.to_dict(),
    }
    (PRETRAINED / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"shipped {name}: val {summary['val_acc']:.2f}%, test {summary['test_acc']:.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--description", required=True)
    args = parser.parse_args()
    ship_run(args.name, args.run_dir, args.description)


if __name__ == "__main__":
    main()
