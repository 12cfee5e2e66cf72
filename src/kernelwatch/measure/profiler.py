"""The GPU's busy time from torch.profiler (CUPTI), the share of a call in a region, and a
call's time kernel by kernel."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from kernelwatch import environment
from kernelwatch.errors import KernelwatchError
from kernelwatch.measure import inject
from kernelwatch.measure.inject import Region
from kernelwatch.measure.timing import (
    Samples,
    calls,
    calls_per_sample,
    sampled,
    synchronize,
)
from kernelwatch.time_methods import PROFILER_KERNELS


def _busy_seconds(prof) -> float:
    """Seconds the GPU spent in the profiled calls' kernels, copies and sets: the union of
    their intervals (the sum, when they ran on one stream)."""
    return union_length([(e.start_ns(), e.start_ns() + e.duration_ns())
                         for e in _gpu_work(prof)]) / 1e9


def _gpu_work(prof) -> list:
    """The profiled GPU work: kernels, copies and sets, not user annotations (the device
    copies of record_function ranges, compiled regions' names), which are spans."""
    work = []
    for e in prof.profiler.kineto_results.events():
        if e.device_type() != torch.autograd.DeviceType.CUDA:
            continue
        annotation, kind = (getattr(e, a, None) for a in ("is_user_annotation", "activity_type"))
        if (annotation and annotation()) or (
                kind and kind() not in ("kernel", "gpu_memcpy", "gpu_memset")):
            continue
        work.append(e)
    return work


def union_length(intervals: Sequence[tuple[int, int]]) -> int:
    """The length of the union of half-open [start, end) intervals: time covered by at
    least one of them, overlaps counted once."""
    busy, end = 0, None
    for lo, hi in sorted(intervals):
        if end is not None and hi <= end:
            continue
        busy += hi - (lo if end is None else max(lo, end))
        end = hi
    return busy


def _profiled_busy(region: Region, count: int, offset: int, device: torch.device) -> float:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        region(count, offset)
        torch.cuda.synchronize(device)
    seconds = _busy_seconds(prof)
    if seconds <= 0:
        raise KernelwatchError("the profiler recorded no GPU work for the call: is it "
                               "running on the GPU?")
    return seconds


def time_cuda_kernels(
    fn: Callable,
    input_sets: Sequence[tuple],
    *,
    samples: int = 50,
    warmup: int = 10,
    min_sample_seconds: float = 1e-3,
    monitor: environment.GpuMonitor | None = None,
) -> Samples:
    """The GPU's own time per call of `fn`, from torch.profiler (CUPTI): per sample, the
    union of the intervals of the kernels, copies and sets its calls ran, whoever launched
    them (the autograd engine's thread, a C++ extension). Idle time while the GPU waits for
    the host is not in it. For calls that cannot be replayed from a CUDA graph."""
    device = torch.device("cuda", torch.cuda.current_device())
    run = calls(fn, input_sets)
    run(warmup, 0)
    torch.cuda.synchronize(device)
    n = len(input_sets)
    _profiled_busy(run, n, 0, device)  # the profiler's first start (CUPTI) is slow: not a sample
    number = calls_per_sample(lambda count, offset: _profiled_busy(run, count, offset, device),
                              n, min_sample_seconds)
    region = inject.after_each_sample(run, device,
                                      lambda r: _profiled_busy(r, number, 0, device))
    return sampled(lambda s: _profiled_busy(region, number, s * number, device) / number,
                   samples, number, PROFILER_KERNELS, monitor)


def region_share(run: Callable[[], object], whole_label: str, region_label: str,
                 device: torch.device, *, calls: int = 5, warmup: int = 2) -> float:
    """The share of a call's time spent inside a region, from torch.profiler: `run` marks
    the whole call and the region with `torch.profiler.record_function(label)` ranges (the
    region may be entered several times per call). On a GPU the ranges' device time (the
    kernels they launched), on the CPU their host time. The write-up's "tensor ops %".

    On a GPU the whole is the GPU's busy time over the calls, not the whole range's device
    total: the profiler links a kernel to a range through the aten operator that launched
    it, and a library that launches from its own C++ (TransformerEngine's FP8 GEMMs) leaves
    its kernels out of every range, which made the region's share of TE's layer read 45-50%
    where compiling the region saved 12-18%."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        run()
    synchronize(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        for _ in range(calls):
            run()
        synchronize(device)
    # The host-side ranges only: on a GPU the profiler also records each range as a device
    # annotation of the same name, whose length is wall time on the GPU, idle gaps included.
    # A host range's device_time_total sums the kernels launched inside it, nested ops too.
    totals = {whole_label: 0.0, region_label: 0.0}
    seen = set()
    for e in prof.events():
        if e.name in totals and e.device_type == torch.autograd.DeviceType.CPU:
            seen.add(e.name)
            totals[e.name] += float(e.device_time_total if cuda else e.cpu_time_total)
    missing = [label for label in totals if label not in seen]
    if missing:
        raise KernelwatchError(f"the profiler saw no range named {', '.join(missing)}: the "
                               "call must mark them with torch.profiler.record_function")
    # device totals are in microseconds, the busy time in seconds
    whole = _busy_seconds(prof) * 1e6 if cuda else totals[whole_label]
    return totals[region_label] / whole if whole else math.nan


@dataclass(frozen=True)
class KernelTime:
    """One kernel (on the CPU, one aten operator) of a call, as the profiler named it."""

    name: str
    seconds: float  # per call, summed over its launches
    launches: float  # per call


def kernel_times(run: Callable[[], object], device: torch.device, *, calls: int = 3,
                 warmup: int = 1) -> list[KernelTime]:
    """Where a call's time goes, kernel by kernel, from torch.profiler: on a GPU each kernel
    (copies and sets too) by name with its device seconds and launches per call; on the CPU
    each aten operator by its own host time. The longest first."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        run()
    synchronize(device)
    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            run()
        synchronize(device)
    totals: dict[str, list[float]] = {}
    if cuda:
        for e in _gpu_work(prof):
            total = totals.setdefault(e.name(), [0.0, 0])
            total[0] += e.duration_ns() / 1e9
            total[1] += 1
    else:
        totals = {e.key: [e.self_cpu_time_total / 1e6, e.count] for e in prof.key_averages()
                  if e.key.startswith("aten::")}
    found = [KernelTime(name, s / calls, n / calls) for name, (s, n) in totals.items()]
    return sorted(found, key=lambda k: -k.seconds)
