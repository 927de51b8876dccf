"""Where the reference's (seed 000's) step spends its main process's time: torch.profiler.

    python lab/bench/profile_reference_step.py [THREADS]

`bench_reference.SeedTrainer`, batch 128, 40 steps after 10 untimed; the DataLoader's two
worker processes (PIL rotation, ToTensor, Normalize) are not in the profile, only the waits
for their batches and the collation's copies in this process.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from mnistlab.bench_reference import SeedTrainer, stage_mnist
from mnistlab.data import ensure_mnist, find_files

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
with tempfile.TemporaryDirectory() as root:
    stage_mnist(find_files(ensure_mnist(None, log=lambda _: None)), Path(root))
    trainer = SeedTrainer(Path(root), 128, torch.device("cpu"), epochs=10)
    trainer.train(10 * 128)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        trainer.train(40 * 128)
        seconds = time.perf_counter() - started
print(
    f"reference, {threads} thread(s): {1000 * seconds / 40:.1f} ms per step under the profiler, "
    f"load average {os.getloadavg()[0]:.2f}"
)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=16))
