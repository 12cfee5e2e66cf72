"""This process's RSS and CPU use, sampled while something runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class ProcessUsage:
    """RSS bytes and CPU use (percent of one core, psutil's convention: 200 = two cores
    busy) of this process, sampled while something ran."""

    rss: list[int]
    cpu_percent: list[float]

    @staticmethod
    def _p90(values: Sequence[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]

    @property
    def peak_rss(self) -> int:
        return max(self.rss)

    @property
    def p90_rss(self) -> float:
        return self._p90(self.rss)

    @property
    def peak_cpu(self) -> float:
        return max(self.cpu_percent)

    @property
    def p90_cpu(self) -> float:
        return self._p90(self.cpu_percent)


def sample_process(run: Callable[[], object], interval: float = 0.1) -> ProcessUsage:
    """Sample this process's RSS and CPU use every `interval` seconds while `run()` executes
    (psutil, from a thread; 0.1 s because CPU times tick at 10 ms). A last sample is taken
    when it returns, so even a short run has one."""
    import threading

    import psutil

    proc = psutil.Process()
    proc.cpu_percent(None)  # the first call only starts psutil's interval
    rss: list[int] = []
    cpu: list[float] = []
    done = threading.Event()

    def sampler() -> None:
        while not done.wait(interval):
            rss.append(proc.memory_info().rss)
            cpu.append(proc.cpu_percent(None))

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        run()
    finally:
        done.set()
        thread.join()
    rss.append(proc.memory_info().rss)
    cpu.append(proc.cpu_percent(None))
    return ProcessUsage(rss, cpu)


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim), so
    RSS sampled afterwards shows what is live, not what building a variant once needed
    (an fp32 model converted and quantized leaves its freed fp32 pages mapped otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
