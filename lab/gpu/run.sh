#!/bin/bash
# One device call: setup, CUDA smoke checks, then the seed suites at full scale (resumable).
#   bash lab/gpu/run.sh [BUDGET_S] [PHASES]     PHASES: any of "smoke repro" (default both)
# On the device machine (no network): wheels for packages its image lacks come from .whl/,
# MNIST from .devdata/ (both carried). Everything goes to $OUT: smoke.txt, repro.txt,
# stores.tgz (one SQLite store per suite; carried back in as .devstores/ to resume).
set -u
BUDGET=${1:-540}; PHASES=${2:-"smoke repro"}; T0=$SECONDS
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
left() { echo $((BUDGET - (SECONDS - T0))); }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MNISTLAB_DATA=$PWD/.devdata
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m mnistlab.cli "$@"\n' >/tmp/bin/mnistlab
chmod +x /tmp/bin/mnistlab; export PATH=/tmp/bin:$PATH
T=$(mktemp -d); STORES=$PWD/.devstores; mkdir -p "$STORES"
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

timed() {  # timed LABEL LIMIT_S CMD...: one line with the exit code and wall time, output kept
  local label=$1 limit=$2; shift 2; local s=$SECONDS
  echo "\$ $*"; timeout "$limit" "$@" 2>&1 | tail -n 6; local rc=${PIPESTATUS[0]}
  echo "== $label: rc=$rc in $((SECONDS - s))s"
}

if [[ $PHASES == *smoke* ]]; then
  {
    echo "commit $commit  $(date -u +%FT%TZ)"; nvidia-smi -L; nproc
    python3 -c "import torch, optuna; print('torch', torch.__version__, 'optuna', optuna.__version__)"
    timeout 120 python3 lab/gpu/smoke.py
    timed "train 2 epochs on cuda" 60 mnistlab train --device cuda --epochs 2 --no-progress --out "$T/train"
    timed "grid seed000 1 epoch" 60 mnistlab grid seed000 --device cuda \
      --epochs 1 --train-subset 5000 --val-size 2000 --no-progress \
      --store "sqlite:///$T/g.db" --runs-dir "$T/g"
    timed "tune x3 on cuda" 60 mnistlab tune --space budget8k --trials 3 --max-epochs 1 \
      --train-subset 2000 --device cuda --store "sqlite:///$T/t.db" --runs-dir "$T/t"
    timed "predict (cuda checkpoint)" 30 mnistlab predict --checkpoint "$T/train/best.pt" docs/digits
    timed "bench 5 s" 60 mnistlab bench --seconds 5 --grid 4
  } 2>&1 | tee "$OUT/smoke.txt"
fi

if [[ $PHASES == *repro* ]]; then
  # one grid process per suite, side by side on the one GPU; then 3 seeds of each top 3 (by val)
  suite() {  # suite NAME WORKERS
    local s=$SECONDS common=(--device cuda --no-progress --store "sqlite:///$STORES/$1.db" --runs-dir "$T/runs/$1")
    mnistlab grid "$1" --workers "$2" "${common[@]}" 2>&1 | tail -n 3
    echo "== $1 first pass: $((SECONDS - s))s"
    mnistlab grid "$1" --top 3 --seeds 3 --workers 3 "${common[@]}" 2>&1 | tail -n 3
    echo "== $1 with top-3 x 3 seeds: $((SECONDS - s))s"
  }
  {
    echo "commit $commit  $(date -u +%FT%TZ)  budget $(left)s"
    suite seed000 6 > "$T/seed000.log" 2>&1 &
    suite seed002 4 > "$T/seed002.log" 2>&1 &
    suite seed001 3 > "$T/seed001.log" 2>&1 &
    suite seed004 2 > "$T/seed004.log" 2>&1 &
    suite seed003 2 > "$T/seed003.log" 2>&1 &
    while [[ -n $(jobs -r) && $(left) -gt 25 ]]; do sleep 5; done
    [[ -n $(jobs -r) ]] && { echo "budget reached: stopping (the stores resume)"; pkill -INT -f "mnistlab.cli grid"; sleep 8; pkill -9 -f "mnistlab.cli"; }
    wait
    for s in seed000 seed001 seed002 seed003 seed004; do echo "---- $s"; cat "$T/$s.log"; done
    nvidia-smi --query-gpu=name,memory.used --format=csv
  } 2>&1 | tee "$OUT/repro.txt"
  tar -C "$STORES" -czf "$OUT/stores.tgz" .
fi
echo "total $((SECONDS - T0))s"
