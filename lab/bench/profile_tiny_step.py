"""Where `train`'s step of `tiny` spends its time: torch.profiler over `RunState.train_epoch`.

    python lab/bench/profile_tiny_step.py [THREADS] [nchw]

The steps are `train`'s own (`mnistlab.bench.ProductSteps`: augmentation, forward, backward,
SGD, OneCycle), batch 128, 40 steps after 10 untimed; `nchw` trains as before NHWC.
"""

import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from mnistlab.bench import ProductSteps, bench_config
from mnistlab.data import ensure_mnist, load_mnist
from mnistlab.engine.trainer import started_run
from mnistlab.run.build import splits_for

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
config = bench_config("tiny", 128, "cpu", epochs=100)
data = load_mnist(ensure_mnist(None, log=lambda _: None), download=False)
with started_run(config, splits_for(config, data)) as (run, gen):
    run.model.cpu_channels_last = "nchw" not in sys.argv
    steps = ProductSteps(run, gen)
    steps.train(10 * 128)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        timing = steps.timed(40 * 128)
layout = "NHWC" if run.model.cpu_channels_last else "NCHW"
print(
    f"{layout}, {threads} thread(s): {1000 * timing.seconds / 40:.1f} ms per step under the "
    f"profiler, load average {os.getloadavg()[0]:.2f}"
)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=16))
