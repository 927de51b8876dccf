"""`train`'s steps at 1 and 2 torch threads, alternating in one process (rounds of 15 steps).

    python lab/bench/bench_threads.py            # libgomp's default wait policy
    OMP_WAIT_POLICY=PASSIVE python lab/bench/bench_threads.py

With other work on the machine, a thread per core waits at every OpenMP barrier for a
thread the scheduler has taken off its core; one thread never waits.
"""

import os

import torch

from mnistlab.bench import ProductSteps, bench_config
from mnistlab.data import ensure_mnist, load_mnist
from mnistlab.engine.trainer import started_run
from mnistlab.run.build import splits_for

config = bench_config("tiny", 128, "cpu", epochs=100)
data = load_mnist(ensure_mnist(None, log=lambda _: None), download=False)
with started_run(config, splits_for(config, data)) as (run, gen):
    steps = ProductSteps(run, gen)
    steps.train(10 * 128)
    load = os.getloadavg()[0]
    rates: dict[int, list[float]] = {1: [], 2: []}
    for index in range(6):
        for threads in (1, 2) if index % 2 == 0 else (2, 1):
            torch.set_num_threads(threads)
            rates[threads].append(steps.timed(15 * 128).rate)
policy = os.environ.get("OMP_WAIT_POLICY", "default")
print(f"OMP_WAIT_POLICY={policy}, load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
for threads, values in rates.items():
    mean = len(values) / sum(1 / v for v in values)  # equal images per round: total / time
    shown = " ".join(f"{v:,.0f}" for v in values)
    print(f"  {threads} thread(s): {mean:6,.0f} img/s   rounds {shown}")
