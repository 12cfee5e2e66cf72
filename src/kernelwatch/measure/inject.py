"""Test-only: a slowdown of known size, for checking that a regression check catches it
(`kernelwatch compare`, `kernelwatch fidelity`). Never set it for real measurements.

It wraps what a timer measures before the timer's clock sees it, so no timer carries it:
- CPU (`time_cpu`): each call is followed by busy work lasting this fraction of the call's
  own time;
- GPU (`time_cuda`, `time_cuda_kernels`, `time_caller`): the calls of each sample are
  followed by a GPU spin kernel lasting this fraction of an uninjected sample on that
  timer's own clock, so device time and caller time both grow by it. One spin per sample,
  not per call: a launch per call would add its own overhead to a microsecond kernel;
- generation (`time_generations`): each token waits this fraction of its own interval.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

INJECT_SLOWDOWN_ENV = "KERNELWATCH_INJECT_SLOWDOWN"

# The calls of one sample: `region(count, offset)` makes `count` calls from input set `offset`.
Region = Callable[[int, int], None]


def injected_slowdown() -> float:
    """The slowdown fraction now in force (0 for real measurements). Read at every
    measurement, so one process can measure with and without it."""
    return float(os.environ.get(INJECT_SLOWDOWN_ENV) or 0)


@contextmanager
def suspended() -> Iterator[None]:
    """No slowdown inside: for a fact other series are read against (the host's dispatch),
    which must stay the machine's when a test injects a slowdown into what it measures."""
    saved = os.environ.pop(INJECT_SLOWDOWN_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[INJECT_SLOWDOWN_ENV] = saved


def _busy_until(deadline: float) -> None:
    while time.perf_counter() < deadline:
        pass


def after_each_call(fn: Callable) -> Callable:
    """`fn`, each call followed by busy work lasting the fraction of the call's time."""
    fraction = injected_slowdown()
    if fraction <= 0:
        return fn

    def slowed(*args):
        t0 = time.perf_counter()
        out = fn(*args)
        _busy_until(time.perf_counter() + fraction * (time.perf_counter() - t0))
        return out

    return slowed


_gpu_spin_cycles_per_second: dict[int, float] = {}


def _gpu_spin(device: torch.device, seconds: float) -> Callable[[], None]:
    """A launch of `torch.cuda._sleep` lasting about `seconds` on the GPU. Its rate (cycles
    per second) is measured once per device."""
    index = device.index or 0
    if index not in _gpu_spin_cycles_per_second:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(1_000_000)  # load the kernel
        rates = []
        for cycles in (10_000_000, 20_000_000):
            start.record()
            torch.cuda._sleep(cycles)
            end.record()
            end.synchronize()
            rates.append(cycles / (start.elapsed_time(end) / 1e3))
        _gpu_spin_cycles_per_second[index] = statistics.median(rates)
    cycles = max(1, int(seconds * _gpu_spin_cycles_per_second[index]))
    return lambda: torch.cuda._sleep(cycles)


def after_each_sample(region: Region, device: torch.device,
                      seconds_of: Callable[[Region], float]) -> Region:
    """`region` followed by a GPU spin lasting the fraction of an uninjected sample, sized
    from the median of five samples (`seconds_of(region)` times one on the timer's clock);
    `region` itself when no slowdown is in force."""
    fraction = injected_slowdown()
    if fraction <= 0:
        return region
    spin = _gpu_spin(device, fraction * statistics.median(seconds_of(region) for _ in range(5)))

    def slowed(count: int, offset: int) -> None:
        region(count, offset)
        spin()

    return slowed


def after_each_token(tick: Callable[[], None]) -> Callable[[], None]:
    """`tick`, each token first waiting the fraction of the interval since the last one
    (since this call, for the first)."""
    fraction = injected_slowdown()
    if fraction <= 0:
        return tick
    last = time.perf_counter()

    def slowed() -> None:
        nonlocal last
        now = time.perf_counter()
        _busy_until(now + fraction * (now - last))
        tick()
        last = time.perf_counter()

    return slowed
