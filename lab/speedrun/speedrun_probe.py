"""Cost per training epoch (55k images, batch 128, 2 threads, random data) of SpeedNet prototypes.

python lab/speedrun/speedrun_probe.py   (each candidate twice; nothing else on the cores)
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedrun_nets import SpeedNet  # noqa: E402  (the prototypes: stem "pool" or "stride")

torch.set_num_threads(2)


def cost(model, bs=128, steps=60):
    opt = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    x = torch.randn(bs, 1, 28, 28)
    y = torch.randint(0, 10, (bs,))
    for i in range(steps + 10):
        if i == 10:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1).backward()
        opt.step()
    return (time.perf_counter() - start) / steps / bs * 55000


cands = {
    "A pool 16-32-64": dict(),
    "D stride 16-32-64": dict(stem="stride"),
    "F stride 16-48-96": dict(stem="stride", c2=48, c3=96),
    "G stride 32-64-128": dict(stem="stride", c1=32, c2=64, c3=128),
    "H stride 32-48-96": dict(stem="stride", c1=32, c2=48, c3=96),
    "E pool 24-48-96": dict(c1=24, c2=48, c3=96),
}
for _ in range(2):
    for name, kw in cands.items():
        m = SpeedNet(**kw)
        n = sum(p.numel() for p in m.parameters())
        print(f"{name:20} params {n:7,}  s/epoch {cost(m):5.2f}", flush=True)
