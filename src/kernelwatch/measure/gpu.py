"""CUDA events around the calls, or around a CUDA-graph replay of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from kernelwatch import environment
from kernelwatch.measure import inject
from kernelwatch.measure.inject import Region
from kernelwatch.measure.timing import (
    Samples,
    calls,
    calls_per_sample,
    l2_cache_bytes,
    sampled,
)
from kernelwatch.time_methods import CUDA_EVENTS, CUDA_GRAPH


class _Events:
    """A pair of timing events: seconds of a region on the GPU's clock."""

    def __init__(self) -> None:
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def seconds(self, region: Region, count: int, offset: int) -> float:
        self.start.record()
        region(count, offset)
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1e3


def _graph_replay(run: Region, number: int, n_sets: int, device: torch.device) -> Region:
    """`number` calls of `run` captured once; the region replays them (its count and offset
    are the capture's)."""
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        run(n_sets, 0)  # warm the side stream's allocator
    torch.cuda.current_stream(device).wait_stream(stream)
    with torch.cuda.graph(graph):
        run(number, 0)
    graph.replay()
    torch.cuda.synchronize(device)
    return lambda count, offset: graph.replay()


def _flushed(fn: Callable, input_sets: Sequence[tuple], samples: int,
             device: torch.device) -> Samples:
    """One call per sample after overwriting a buffer of twice the L2."""
    flush = torch.empty(2 * l2_cache_bytes(device), dtype=torch.uint8, device=device)
    events = _Events()
    one = calls(fn, input_sets)
    per_call = []
    for s in range(samples):
        flush.zero_()
        per_call.append(events.seconds(one, 1, s))
    return Samples(per_call, 1, CUDA_EVENTS)


def time_cuda(
    fn: Callable,
    input_sets: Sequence[tuple],
    *,
    samples: int = 50,
    warmup: int = 10,
    cuda_graph: bool = False,
    flush_l2: bool = False,
    min_sample_seconds: float = 1e-3,
    monitor: environment.GpuMonitor | None = None,
) -> Samples:
    """CUDA-event samples of `fn`, rotating through `input_sets`.

    - `cuda_graph`: capture the calls once and time replays. For launch-bound kernels this
      measures the GPU's work rather than Python's dispatch; it needs a capturable `fn`.
    - `flush_l2`: overwrite a buffer of twice the L2 before every sample, and time a single
      call, so inputs that would fit in L2 are read from HBM. Rotating through enough input
      sets (more bytes than the L2) does the same without a per-call flush.
    - `monitor`: read the GPU's conditions before the first sample and after each one.
    """
    device = torch.device("cuda", torch.cuda.current_device())
    run = calls(fn, input_sets)
    run(warmup, 0)
    torch.cuda.synchronize(device)
    if flush_l2:
        return _flushed(fn, input_sets, samples, device)
    events = _Events()
    # Calibrated on plain launches.
    number = calls_per_sample(lambda count, offset: events.seconds(run, count, offset),
                              len(input_sets), min_sample_seconds)
    region, method = run, CUDA_EVENTS
    if cuda_graph:
        region, method = _graph_replay(run, number, len(input_sets), device), CUDA_GRAPH
    region = inject.after_each_sample(region, device,
                                      lambda r: events.seconds(r, number, 0))
    return sampled(lambda s: events.seconds(region, number, s * number) / number, samples,
                   number, method, monitor)
