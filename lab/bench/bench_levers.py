"""Levers for `train`'s steps on the CPU, each beside the seed 000 reference, in one process.

    python lab/bench/bench_levers.py [ROUNDS] [SECONDS_PER_CHUNK]

Every variant trains the same number of images per round with `RunState.train_epoch` (what
`train` runs; `mnistlab.bench.ProductSteps`), the reference with `bench_reference.SeedTrainer`;
rounds alternate the order. Variants: the committed steps (NHWC on the CPU), NCHW as before
(`cpu_channels_last = False`), bf16 autocast around the forward (not committed), foreach SGD,
ReLU in place, and 2 threads instead of 1 for both sides.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mnistlab.bench import WARMUP_STEPS, ProductSteps, Timing, bench_config
from mnistlab.bench_reference import SeedTrainer, stage_mnist
from mnistlab.data import ensure_mnist, find_files, load_mnist
from mnistlab.engine.trainer import started_run
from mnistlab.run.build import splits_for

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 6
CHUNK_S = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
BATCH = 128


def nchw(run):
    run.model.cpu_channels_last = False


def bf16(run):
    inner = run.model.forward

    def forward(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return inner(x).float()

    run.model.forward = forward


def foreach(run):
    for group in run.optimizer.param_groups:
        group["foreach"] = True


def relu_inplace(run):
    for module in run.model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = True


# name: (setup of the product run or None for the reference, threads)
VARIANTS = {
    "reference (seed 000)": (None, 1),
    "mnistlab as committed (NHWC)": ((lambda run: None), 1),
    "mnistlab NCHW (before)": (nchw, 1),
    "mnistlab + bf16 autocast": (bf16, 1),
    "mnistlab + foreach SGD": (foreach, 1),
    "mnistlab + ReLU in place": (relu_inplace, 1),
    "reference, 2 threads": (None, 2),
    "mnistlab as committed, 2 threads": ((lambda run: None), 2),
}


def rate(timings: list[Timing]) -> float:
    return sum(t.images for t in timings) / sum(t.seconds for t in timings)


def main() -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    directory = ensure_mnist(None, log=lambda _: None)
    config = bench_config("tiny", BATCH, "cpu", epochs=400)
    splits = splits_for(config, load_mnist(directory, download=False))
    print(
        f"commit {commit}, torch {torch.__version__}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stage_mnist(find_files(directory), root)
        sides = {}
        for name, (setup, threads) in VARIANTS.items():
            if setup is None:
                trainer = SeedTrainer(root, BATCH, torch.device("cpu"), epochs=400)
                sides[name] = (lambda n, t=trainer: Timing(*t.timed(n)), threads)
            else:
                run, generator = stack.enter_context(started_run(config, splits))
                setup(run)
                sides[name] = (ProductSteps(run, generator).timed, threads)
        for timed, threads in sides.values():  # warm-up (the DataLoaders' workers start)
            torch.set_num_threads(threads)
            timed(WARMUP_STEPS * BATCH)
        torch.set_num_threads(1)
        pace = sides["reference (seed 000)"][0](WARMUP_STEPS * BATCH)
        images = max(BATCH, round(pace.rate * CHUNK_S / BATCH) * BATCH)
        results = {name: [] for name in sides}
        started = time.perf_counter()
        for index in range(ROUNDS):
            names = list(sides) if index % 2 == 0 else list(reversed(sides))
            for name in names:
                timed, threads = sides[name]
                torch.set_num_threads(threads)
                results[name].append(timed(images))
    seconds = time.perf_counter() - started
    print(
        f"{ROUNDS} rounds x {images:,} images per variant in {seconds:.0f} s, "
        f"load average {os.getloadavg()[0]:.2f} at end"
    )
    reference = results["reference (seed 000)"]
    committed = results["mnistlab as committed (NHWC)"]
    for name, timings in results.items():
        pairs = zip(timings, reference, strict=True)
        per_round = " ".join(f"{t.rate / r.rate:.2f}" for t, r in pairs)
        print(
            f"  {name:34s} {rate(timings):7,.0f} img/s  {rate(timings) / rate(reference):5.2f}x "
            f"reference  {rate(timings) / rate(committed):5.2f}x committed   "
            f"per round vs reference: {per_round}"
        )


if __name__ == "__main__":
    main()
