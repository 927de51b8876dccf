#!/bin/bash
# The seed suites at their own scale on this machine's CPU, one after another, resumable:
# each suite's configs with seed 0, then 3 seeds of its top 3 by val accuracy.
# One thread per worker: two 2-thread workers on 2 cores wait on each other (docs/grids.md).
#   bash lab/repro-2026-11/repro_cpu.sh [SUITE...]      (default: seed003 seed004 seed001 seed000 seed002)
# Stores: lab/repro-2026-11/SUITE.db; logs: lab/repro-2026-11/SUITE.log.
set -u
cd "$(dirname "$0")/../.."
for suite in "${@:-seed003 seed004 seed001 seed000 seed002}"; do
  for s in $suite; do
    common=(--workers 2 --threads 1 --no-progress --store "sqlite:///lab/repro-2026-11/$s.db" --runs-dir artifacts/repro-runs)
    { echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
      .venv/bin/mnistlab grid "$s" "${common[@]}"
      .venv/bin/mnistlab grid "$s" --top 3 --seeds 3 "${common[@]}"
      echo "# $(date -u +%FT%TZ) done"; } >>"lab/repro-2026-11/$s.log" 2>&1
  done
done
