"""Device time by the method a case declares, the caller's time beside it, and the check
that takes both in turns while reading the GPU."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from kernelwatch import environment
from kernelwatch.measure import inject
from kernelwatch.measure.gpu import time_cuda
from kernelwatch.measure.inject import Region
from kernelwatch.measure.profiler import time_cuda_kernels
from kernelwatch.measure.timing import (
    Samples,
    calls,
    calls_per_sample,
    sampled,
    time_cpu,
)
from kernelwatch.time_methods import (
    CUDA_GRAPH,
    DECLARED_METHODS,
    HOST_CLOCK,
    PROFILER_KERNELS,
)

# A device time over the caller's time by more than this, with the device's lower quartile
# above the caller's upper quartile, is flagged: the GPU cannot do more work than the caller
# waits for, so such a device time counts something else (launch gaps, the host).
DEVICE_OVER_CALLER_MARGIN = 0.03


def _counts(samples: int | None, warmup: int | None) -> dict:
    return {k: v for k, v in (("samples", samples), ("warmup", warmup)) if v is not None}


def time_device(
    fn: Callable, input_sets: Sequence[tuple], device: torch.device, *, method: str,
    samples: int | None = None, warmup: int | None = None,
    monitor: environment.GpuMonitor | None = None,
) -> Samples:
    """Seconds per call on the device's clock: on a GPU by `method` (CUDA_GRAPH or
    PROFILER_KERNELS, the GPU's own work; CUDA_EVENTS, events around plain calls), on the
    CPU the host clock (time_cpu). A case whose method is CUDA_GRAPH must be capturable;
    nothing falls back silently, so the method a result declares is the one it used."""
    if method not in DECLARED_METHODS:
        raise ValueError(f"device-time method {method!r}: one of {', '.join(DECLARED_METHODS)}")
    counts = _counts(samples, warmup)
    if device.type != "cuda":
        return time_cpu(fn, input_sets, **counts)
    if method == PROFILER_KERNELS:
        return time_cuda_kernels(fn, input_sets, monitor=monitor, **counts)
    return time_cuda(fn, input_sets, cuda_graph=method == CUDA_GRAPH, monitor=monitor,
                     **counts)


def time_callable(
    fn: Callable, input_sets: Sequence[tuple], device: torch.device, *,
    samples: int | None = None, warmup: int | None = None, **gpu_options
) -> Samples:
    """Time on whichever clock suits the device (see time_cpu / time_cuda). `samples` and
    `warmup` apply to both; slow kernels (a whole GPTQ layer) pass fewer."""
    counts = _counts(samples, warmup)
    if device.type == "cuda":
        return time_cuda(fn, input_sets, **counts, **gpu_options)
    return time_cpu(fn, input_sets, **counts)


def time_caller(
    fn: Callable, input_sets: Sequence[tuple], device: torch.device, *,
    samples: int = 30, warmup: int = 10, min_sample_seconds: float = 2e-3,
    monitor: environment.GpuMonitor | None = None,
) -> Samples:
    """Seconds per call as a Python caller pays them: back-to-back calls from a loop, no
    CUDA graph, one synchronize at the end of each sample, on the host's clock, rotating
    through `input_sets` as `time_callable` does.

    `time_device` on a GPU replays CUDA graphs (where the case declares it) or reads the
    profiler: the kernel's own cost. A model calling the kernel pays dispatch, guards and the
    compiled wrapper on top; when those outlast the kernel, the GPU waits for the host and
    this is the figure the caller sees. On the CPU there is no difference: both are
    `time_cpu`.
    """
    if device.type != "cuda":
        return time_cpu(fn, input_sets, samples=samples, warmup=warmup,
                        min_sample_seconds=min_sample_seconds)
    run = calls(fn, input_sets)
    run(warmup, 0)

    def host_seconds(region: Region, count: int, offset: int) -> float:
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        region(count, offset)
        torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    number = calls_per_sample(lambda count, offset: host_seconds(run, count, offset),
                              len(input_sets), min_sample_seconds)
    region = inject.after_each_sample(run, device, lambda r: host_seconds(r, number, 0))
    return sampled(lambda s: host_seconds(region, number, s * number) / number, samples,
                   number, HOST_CLOCK, monitor)


def device_exceeds_caller(device: Samples, caller: Samples,
                          margin: float = DEVICE_OVER_CALLER_MARGIN) -> bool:
    """Whether a device time exceeds the caller's time beyond noise: its median by more
    than `margin`, and its lower quartile above the caller's upper quartile."""
    return (device.median > caller.median * (1 + margin)
            and device.quantile(0.25) > caller.quantile(0.75))


@dataclass
class DeviceCheck:
    """Device time and caller time of one case taken in turns in one process, and what the
    GPU was doing meanwhile: `flags` (environment's bits; 0 when nothing is wrong)."""

    device: Samples
    caller: Samples
    conditions: environment.GpuConditions

    @property
    def flags(self) -> int:
        over = environment.DEVICE_OVER_CALLER if device_exceeds_caller(
            self.device, self.caller) else 0
        return over | self.conditions.flags

    def describe(self) -> str:
        return (f"device time ({self.device.method}) median {self.device.median * 1e6:.1f} us, "
                f"caller time {self.caller.median * 1e6:.1f} us; {self.conditions.describe()}"
                f"; flags {self.flags} ({environment.describe_flags(self.flags) or 'none'})")


def check_device_time(fn: Callable, input_sets: Sequence[tuple], device: torch.device, *,
                      method: str, rounds: int = 4, samples_per_round: int = 5,
                      warmup: int = 3) -> DeviceCheck:
    """Device time by `method` and caller time, `rounds` turns of `samples_per_round`
    samples each (so a change of clocks or load during the check meets both), the GPU
    read between samples. A GPU check: on the CPU both clocks are one."""
    if device.type != "cuda":
        raise ValueError("check_device_time needs a CUDA device")
    monitor = environment.GpuMonitor()
    dev: list[float] = []
    host: list[float] = []
    d = c = None
    for _ in range(rounds):
        d = time_device(fn, input_sets, device, method=method, samples=samples_per_round,
                        warmup=warmup, monitor=monitor)
        c = time_caller(fn, input_sets, device, samples=samples_per_round, warmup=warmup,
                        monitor=monitor)
        dev += d.per_call_seconds
        host += c.per_call_seconds
    conditions = monitor.conditions()
    return DeviceCheck(Samples(dev, d.calls_per_sample, d.method, conditions),
                       Samples(host, c.calls_per_sample, c.method, conditions), conditions)


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 30, samples: int = 20) -> float:
    """Measured device-memory bandwidth in bytes/s: a large copy, counting read plus write.

    This is the ceiling that "% of copy bandwidth" refers to: measured here, not a datasheet.
    """
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    src.random_(0, 255)
    dst = torch.empty_like(src)
    t = time_callable(lambda: dst.copy_(src), [()], device, samples=samples)
    return 2 * nbytes / t.median


# A dispatch sample lasts longer than a scheduler's time slice (a few ms), so that a host
# shared with other work reads slower in every sample, as a long series' samples do (2 ms
# samples beside busy processes read the host barely slower: docs/findings/
# gpu-history-h200.md, sixth lease of 2026-12-07).
DISPATCH_SAMPLE_SECONDS = 20e-3


def dispatch_seconds(device: torch.device, samples: int = 30) -> Samples:
    """Seconds a Python caller pays for one tiny op on `device`: an in-place add to a
    one-element tensor, back to back as `time_caller` takes calls. The device's work is a
    single element, so this is the host's own cost per call (Python, torch's dispatcher,
    the launch): what a caller time, a latency or a compile carries beside the device's
    work. A slower or busier host moves it, and so can what the measuring process holds
    (a forkserver's imports), never a workload's kernels. The test-only slowdown does not
    reach it (`inject.suspended`): series are read against it."""
    x = torch.zeros(1, device=device)
    with inject.suspended():
        return time_caller(lambda: x.add_(1), [()], device, samples=samples,
                           min_sample_seconds=DISPATCH_SAMPLE_SECONDS)
