#!/bin/bash
# docs/grids.md's tune figures: `mnistlab tune --space budget8k --trials 30` on 5,000 training
# images x 5 epochs, from an empty directory; writes lab/tune/budget8k/{machine,tune,
# pruning}.txt and trials.json.   bash lab/tune/tune_budget8k.sh
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd); out=$repo/lab/tune/budget8k; mkdir -p "$out"
work=$(mktemp -d); cd "$work"
command=(mnistlab tune --space budget8k --trials 30 --train-subset 5000 --max-epochs 5 --store sqlite:///tune.db)
{ echo "command (cwd: an empty directory; MNISTLAB_DATA pointing at verified MNIST):"
  echo "  ${command[*]}"; echo "commit: $(git -C "$repo" rev-parse --short HEAD)"
  echo "cores (nproc): $(nproc)"; echo "start and load before:"; echo "  $(date -u) / $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$out/machine.txt"
started=$SECONDS
"$repo/.venv/bin/${command[0]}" "${command[@]:1}" >"$out/tune.txt" 2>&1
{ echo "end and load after:"; echo "  $(date -u) / $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wall: $((SECONDS - started)) s"; } >>"$out/machine.txt"
"$repo/.venv/bin/mnistlab" results --store sqlite:///tune.db --suite budget8k --runs --json >"$out/trials.json"
"$repo/.venv/bin/python" - "$out/pruning.txt" <<'PY'
import statistics, sys
from mnistlab.experiments.store import RunStore
store = RunStore("sqlite:///tune.db", heartbeat=False)
records = store.records(store.study("budget8k", create=False))
states = [r.state for r in records]
run = {r.number: len(r.epochs) for r in records}
per_epoch = [e["seconds"] for r in records for e in r.epochs]
max_epochs = 5
pruned = [r for r in records if r.state == "pruned"]
unrun = sum(max_epochs - run[r.number] for r in pruned)
mean = statistics.fmean(per_epoch)
own = sum((max_epochs - run[r.number]) * statistics.fmean([e["seconds"] for e in r.epochs]) for r in pruned if r.epochs)
lines = [
    f"trials {len(records)}: " + ", ".join(f"{s} {states.count(s)}" for s in ("finished", "pruned", "diverged", "failed")),
    f"epochs run {sum(run.values())}; epochs pruned trials did not run {unrun} (of {max_epochs * len(records)} if none were pruned)",
    f"mean s/epoch over all {len(per_epoch)} epochs run: {mean:.2f}; median {statistics.median(per_epoch):.2f}",
    f"time in trials (sum of epoch seconds): {sum(per_epoch):.0f}s",
    f"saved, unrun epochs x mean s/epoch: {unrun * mean:.0f}s; x each pruned trial's own s/epoch: {own:.0f}s",
]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
