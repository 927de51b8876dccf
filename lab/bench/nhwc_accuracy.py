"""Short runs of the default config: NCHW (before), NHWC (as committed), NHWC + bf16 autocast.

    python lab/bench/nhwc_accuracy.py

`train_run` of the default config, 4 epochs of 20k training images, seeds 0-2, 1 thread; the
epoch is chosen on validation and the test set evaluated once, as always. bf16 (not
committed) wraps the training forward in `torch.autocast("cpu", torch.bfloat16)`.
"""

import os
import time

import torch

from mnistlab.config import TrainConfig
from mnistlab.data import load_mnist, split_mnist
from mnistlab.engine.trainer import train_run
from mnistlab.models.tiny import TinyMNISTNet

torch.set_num_threads(1)
fp32_forward = TinyMNISTNet.forward


def bf16_forward(self, x):
    if not self.training:
        return fp32_forward(self, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fp32_forward(self, x).float()


VARIANTS = {
    "NCHW": (False, fp32_forward),
    "NHWC": (True, fp32_forward),
    "NHWC+bf16": (True, bf16_forward),
}
data = load_mnist(None, download=False)
print(f"default config, 4 epochs of 20,000 images, 1 thread; load average {os.getloadavg()[0]:.2f}")
for seed in (0, 1, 2):
    config = TrainConfig(epochs=4, train_subset=20_000, seed=seed, device="cpu")
    splits = split_mnist(
        data, val_size=config.val_size, seed=config.split_seed, train_subset=20_000
    )
    for name, (channels_last, forward) in VARIANTS.items():
        TinyMNISTNet.cpu_channels_last, TinyMNISTNet.forward = channels_last, forward
        started = time.perf_counter()
        summary = train_run(config, splits, progress=False, log=None).summary
        print(
            f"seed {seed} {name:10s} val {summary['val_acc']:.2f}%  test {summary['test_acc']:.2f}%"
            f"  {time.perf_counter() - started:.0f} s",
            flush=True,
        )
print(f"load average {os.getloadavg()[0]:.2f}")
