"""Timing: training speed from the stored epochs, inference speed and memory measured here.

Training numbers come from the runs (per-epoch seconds, on the device each run names).
Inference is measured on the machine that writes the report: median time per image of
repeated forward passes at batch 1 and batch 1024 (after warm-up), and the peak memory of one
batch-1024 forward pass: `torch.cuda.max_memory_allocated` on a GPU; on Linux CPUs the rise of
the process's peak resident memory (VmHWM, reset through /proc/self/clear_refs) with glibc told
to return large blocks to the system at once, so a freed buffer is not silently reused.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mnistlab.engine.device import torch_threads
from mnistlab.experiments.results import Stat, stat
from mnistlab.experiments.store import RunRecord
from mnistlab.records import RunStatus

REACH_ACC = 99.0  # "epochs and seconds to reach 99% val"


# -- training (from the store) -----------------------------------------------------------------


@dataclass(frozen=True)
class TrainTiming:
    seconds_per_epoch: Stat
    total_seconds: Stat
    epochs_to_reach: Stat
    seconds_to_reach: Stat
    reached: int  # seeds that reached REACH_ACC
    runs: int
    devices: tuple[str, ...]


def reach(record: RunRecord, threshold: float = REACH_ACC) -> tuple[int, float] | None:
    """(first epoch with val_acc >= threshold, training seconds until then), or None."""
    elapsed = 0.0
    for row in record.epochs:
        elapsed += float(row.get("seconds") or 0.0)
        acc = row.get("val_acc")
        if acc is not None and acc >= threshold:
            return int(row["epoch"]), elapsed
    return None


def train_timing(records: list[RunRecord]) -> TrainTiming:
    finished = [r for r in records if r.state == RunStatus.FINISHED]
    reached = [hit for hit in map(reach, finished) if hit is not None]
    return TrainTiming(
        seconds_per_epoch=stat([r.summary.get("seconds_per_epoch") for r in finished]),
        total_seconds=stat([r.summary.get("seconds") for r in finished]),
        epochs_to_reach=stat([float(epoch) for epoch, _ in reached]),
        seconds_to_reach=stat([seconds for _, seconds in reached]),
        reached=len(reached),
        runs=len(finished),
        devices=tuple(sorted({str(r.summary.get("device", "?")) for r in records})),
    )


# -- inference (on this machine) ---------------------------------------------------------------


@dataclass(frozen=True)
class InferenceTiming:
    device: str
    ms_per_image_b1: float
    ms_per_image_b1024: float
    peak_mb_b1024: float | None
    memory_method: str
    threads_b1: int  # CPU threads used (1 at batch 1: a single request's latency)
    threads_b1024: int


def describe_device(device: torch.device) -> str:
    """e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (AMD EPYC, 2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({cpu_name()}, {torch.get_num_threads()} threads)"
    return device.type


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(
    model: nn.Module, x: torch.Tensor, warmup: int, repeats: int, budget_s: float
) -> float:
    for _ in range(warmup):
        model(x)
    _sync(x.device)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - started < budget_s):
        begin = time.perf_counter()
        model(x)
        _sync(x.device)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _return_large_blocks() -> bool:
    """Make glibc hand large freed blocks back at once (mmap threshold fixed at 1 MiB) and
    release what it holds now, so the next forward pass allocates fresh, counted pages."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 20) and libc.mallopt(m_trim_threshold, 1 << 20)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return bool(ok)


def _peak_memory(model: nn.Module, x: torch.Tensor) -> tuple[float | None, str]:
    """Peak extra memory (MB) of one forward pass, and how it was measured."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
        model(x)
        torch.cuda.synchronize(x.device)
        peak = torch.cuda.max_memory_allocated(x.device) - before
        return peak / 2**20, "torch.cuda.max_memory_allocated"
    if sys.platform.startswith("linux") and _return_large_blocks():
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset VmHWM to the current resident size
        except OSError:
            pass
        else:
            before = _status_bytes("VmRSS")
            model(x)
            peak = _status_bytes("VmHWM")
            if before is not None and peak is not None:
                return max(peak - before, 0) / 2**20, "rise of peak RSS (VmHWM)"
    return None, "not measurable on this platform"


@torch.inference_mode()
def inference_timing(
    model: nn.Module, device: torch.device, *, budget_s: float = 0.5
) -> InferenceTiming:
    model = model.to(device).eval()
    one = torch.randn(1, 1, 28, 28, device=device)
    big = torch.randn(1024, 1, 28, 28, device=device)
    threads = torch.get_num_threads()
    # batch 1 on one CPU thread: a single request's latency; several threads only add barrier
    # waits at this size, and on a busy machine those waits dominate (hundreds of ms)
    single = 1 if device.type == "cpu" else threads
    with torch_threads(single):
        b1 = _median_seconds(model, one, warmup=10, repeats=300, budget_s=budget_s)
    peak, method = _peak_memory(model, big)  # also the warm-up of the batch-1024 timing
    b1024 = _median_seconds(model, big, warmup=0, repeats=10, budget_s=budget_s)
    return InferenceTiming(
        describe_device(device), b1 * 1e3, b1024 * 1e3 / 1024, peak, method, single, threads
    )


def load_average() -> str:
    """'load 3.1 on 2 cores' (what else ran while timing), or '' where unknown."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return ""
    return f"1-minute load average {load:.1f} on {cpu_count()} cores"


def process_peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
