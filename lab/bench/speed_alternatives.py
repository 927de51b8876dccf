"""Side-by-side step timings of the alternatives README's Benchmarks section keeps or rejects.

    python lab/bench/speed_alternatives.py > lab/bench/speed-alternatives.txt

tiny, batch 128, 2 threads, one fixed batch (compute only: model forward + backward + SGD step).
Variants are timed in interleaved rounds in this one process, so machine noise hits them alike;
torch.compile's warm-up (compilation) is excluded. Then the share of `bernoulli_` in a step with
nn.Dropout (torch.profiler), and 2x2 max-pool forward+backward written three ways.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mnistlab.models import create_model

torch.set_num_threads(2)
BATCH, ROUNDS, STEPS = 128, 5, 20


def with_torch_dropout(model: nn.Module) -> nn.Module:
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.Dropout):
                setattr(module, name, nn.Dropout(child.p))
    return model


def make_step(model: nn.Module, channels_last: bool = False, compiled: bool = False):
    torch.manual_seed(0)
    inputs = torch.randn(BATCH, 1, 28, 28)
    labels = torch.randint(0, 10, (BATCH,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        loss = F.cross_entropy(forward(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def fresh(torch_dropout: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny")
    return with_torch_dropout(model) if torch_dropout else model


variants = {
    "mnistlab (cheaper dropout mask)": make_step(fresh()),
    "nn.Dropout (bernoulli_ mask)": make_step(fresh(torch_dropout=True)),
    "channels_last": make_step(fresh(), channels_last=True),
    "torch.compile (inductor)": make_step(fresh(), compiled=True),
}
started = time.perf_counter()
for step in variants.values():
    for _ in range(3):  # warm-up; compiles the compiled variant
        step()
print(f"warm-up incl. compilation: {time.perf_counter() - started:.0f} s")
seconds = dict.fromkeys(variants, 0.0)
for _ in range(ROUNDS):
    for name, step in variants.items():
        begin = time.perf_counter()
        for _ in range(STEPS):
            step()
        seconds[name] += time.perf_counter() - begin
base = seconds["mnistlab (cheaper dropout mask)"]
print(f"tiny, batch {BATCH}, 2 threads, {ROUNDS} interleaved rounds x {STEPS} steps each")
for name, spent in seconds.items():
    rate = ROUNDS * STEPS * BATCH / spent
    print(f"  {name:34s} {rate:7,.0f} img/s   {base / spent:.2f}x of mnistlab")

step = make_step(fresh(torch_dropout=True))
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(STEPS):
        step()
events = prof.key_averages()
total = sum(e.self_cpu_time_total for e in events)
bernoulli = sum(e.self_cpu_time_total for e in events if e.key == "aten::bernoulli_")
print(f"nn.Dropout step: bernoulli_ is {100 * bernoulli / total:.1f}% of self CPU time")

x = torch.randn(BATCH, 12, 28, 28).relu().requires_grad_()


def pool_torch() -> None:
    F.max_pool2d(x, 2).sum().backward()


def pool_amax() -> None:
    n, c, h, w = x.shape
    x.view(n, c, h // 2, 2, w // 2, 2).amax((3, 5)).sum().backward()


def pool_maximum() -> None:
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    torch.maximum(top, bottom).sum().backward()


pools = {"F.max_pool2d": pool_torch, "reshape + amax": pool_amax, "4 strided maximum": pool_maximum}
pool_seconds = dict.fromkeys(pools, 0.0)
for _ in range(ROUNDS):
    for name, pool in pools.items():
        begin = time.perf_counter()
        for _ in range(STEPS):
            pool()
        pool_seconds[name] += time.perf_counter() - begin
print(f"2x2 max-pool forward+backward on {tuple(x.shape)}:")
for name, spent in pool_seconds.items():
    print(f"  {name:18s} {1000 * spent / (ROUNDS * STEPS):6.2f} ms")
