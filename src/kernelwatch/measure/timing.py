"""Samples, the methods that read them, and the host clock: what every timer shares."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from kernelwatch import environment
from kernelwatch.measure import inject
from kernelwatch.measure.inject import Region

# How a sample's seconds were read (Samples.method).
from kernelwatch.time_methods import HOST_CLOCK

# A sample whose coefficient of variation exceeds this is flagged as unstable (pyperf's habit:
# warn rather than print a noisy number as if it were fine).
UNSTABLE_CV = 0.10



@dataclass
class Samples:
    """Per-call seconds, one entry per sample; each sample averaged `calls_per_sample` calls.
    `method` says how they were read; `conditions` what the GPU was doing meanwhile."""

    per_call_seconds: list[float]
    calls_per_sample: int
    method: str = HOST_CLOCK
    conditions: environment.GpuConditions | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.per_call_seconds)

    @property
    def cv(self) -> float:
        if len(self.per_call_seconds) < 2:
            return 0.0
        return statistics.stdev(self.per_call_seconds) / statistics.fmean(self.per_call_seconds)

    @property
    def unstable(self) -> bool:
        return self.cv > UNSTABLE_CV

    def quantile(self, q: float) -> float:
        ordered = sorted(self.per_call_seconds)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    def for_asv(self) -> dict:
        return {"samples": list(self.per_call_seconds), "number": self.calls_per_sample}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def calls(fn: Callable, input_sets: Sequence[tuple]) -> Region:
    """The region that calls `fn` `count` times, rotating through `input_sets` from
    `offset`."""
    n = len(input_sets)

    def run(count: int, offset: int = 0) -> None:
        for i in range(count):
            fn(*input_sets[(offset + i) % n])

    return run


def calls_per_sample(seconds: Callable[[int, int], float], n_sets: int,
                     min_sample_seconds: float) -> int:
    """Calls per sample so a sample lasts at least `min_sample_seconds` (`seconds(count,
    offset)` times `count` calls), rounded to whole rotations so every sample (and every
    graph) touches every input set equally often."""
    number = n_sets
    while seconds(number, 0) < min_sample_seconds and number < 1 << 16:
        number *= 2
    return math.ceil(number / n_sets) * n_sets


def sampled(take: Callable[[int], float], samples: int, number: int, method: str,
            monitor: environment.GpuMonitor | None) -> Samples:
    """`samples` of `take(s)` (seconds per call of sample s), the monitor read before the
    first and after each, outside the timed region."""
    if monitor:
        monitor.sample()
    per_call = []
    for s in range(samples):
        per_call.append(take(s))
        if monitor:
            monitor.sample()
    return Samples(per_call, number, method, monitor.conditions() if monitor else None)


def time_cpu(
    fn: Callable,
    input_sets: Sequence[tuple],
    *,
    samples: int = 30,
    warmup: int = 3,
    min_sample_seconds: float = 2e-3,
) -> Samples:
    """Wall-clock samples of `fn` on the CPU, rotating through `input_sets`.

    The calls per sample are calibrated so each sample lasts at least `min_sample_seconds`,
    which keeps perf_counter's resolution and the loop's own cost out of the figure.
    """
    run = calls(inject.after_each_call(fn), input_sets)
    run(warmup)
    number = 1
    while True:
        t0 = time.perf_counter()
        run(number)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_sample_seconds or number >= 1 << 20:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, math.ceil(min_sample_seconds / elapsed)))
    per_call = []
    for s in range(samples):
        t0 = time.perf_counter()
        run(number, s * number)
        per_call.append((time.perf_counter() - t0) / number)
    return Samples(per_call, number)


def l2_cache_bytes(device: torch.device) -> int:
    """The GPU's L2 size (0 on the CPU): input rotation and L2 flushes are sized from it."""
    if device.type != "cuda":
        return 0
    return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 64 << 20)
