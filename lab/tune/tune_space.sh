#!/bin/bash
# A budget space's tune on the full training split, two processes sharing one study (2 cores):
#   bash lab/tune/tune_space.sh budget2k 30 --max-epochs 8
# writes lab/tune/SPACE/{machine,tune-0,tune-1}.txt and trials.json; the store is kept
# beside them (tune.db) so the study can be resumed or re-read.
set -eu
space=$1; trials=$2; shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd); out=$repo/lab/tune/$space; mkdir -p "$out"
bin=$repo/.venv/bin
work=$(mktemp -d); cd "$work"
command=(mnistlab tune --space "$space" --trials "$trials" --threads 1 "$@" --store "sqlite:///$out/tune.db")
{ echo "command, run twice side by side (cwd: an empty directory; MNISTLAB_DATA: verified MNIST):"
  echo "  ${command[*]}"; echo "commit: $(git -C "$repo" rev-parse --short HEAD)"
  echo "cores (nproc): $(nproc)"; echo "start and load before: $(date -u) / $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$out/machine.txt"
started=$SECONDS
"$bin/mnistlab" "${command[@]:1}" >"$out/tune-0.txt" 2>&1 &
sleep 5  # the first process creates the study
"$bin/mnistlab" "${command[@]:1}" >"$out/tune-1.txt" 2>&1
wait
{ echo "end and load after: $(date -u) / $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wall: $((SECONDS - started)) s"; } >>"$out/machine.txt"
"$bin/mnistlab" results --store "sqlite:///$out/tune.db" --suite "$space" --runs --json >"$out/trials.json"
