"""Fixtures shared by the benchmark files. Benchmark files declare; kernelwatch measures."""

import functools
import os

import torch

from kernelwatch import measure
from kernelwatch.errors import Unavailable

# CPU kernels run on this many threads (KERNELWATCH_CPU_THREADS, default 1). Measured by
# `kernelwatch fidelity` on a 2-core machine: with torch's default (2 threads), compiled
# RoPE's median moved 15% between processes (compile-dynamic 12%); on 1 thread, 2.6% and
# 0.9% (docs/measurement.md). A history needs the stable figure; GPT-2 sets its own.
CPU_THREADS_ENV = "KERNELWATCH_CPU_THREADS"


def device() -> torch.device:
    """The device benchmarks run on: the first CUDA GPU if torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pin_cpu_threads(dev: torch.device) -> None:
    """On the CPU, use the pinned thread count (see CPU_THREADS_ENV); on a GPU, leave torch
    as it is. The count is recorded: environment.Environment.track_torch_threads."""
    if dev.type == "cpu":
        torch.set_num_threads(int(os.environ.get(CPU_THREADS_ENV) or 1))


class _CompileHealth:
    """Dynamo's counters as asv series, for a workload's Compile class that defines
    `_health()` returning a `kernelwatch.measure.CompileHealth`. (A leading underscore keeps
    asv from collecting this mixin itself.)"""

    def track_graph_breaks(self, *params):
        return self._health().graph_breaks

    track_graph_breaks.unit = "count"

    def track_unique_graphs(self, *params):
        return self._health().unique_graphs

    track_unique_graphs.unit = "count"

    def track_recompiles(self, *params):
        return self._health().recompiles

    track_recompiles.unit = "count"


class _CompileCost(_CompileHealth):
    """Cold compile (fresh inductor cache) and warm compile (FX graph cache filled by a child
    process) of `self.case.run`, plus dynamo's health, for a workload class that sets
    `prime_compile = staticmethod(workload.prime_compile)`: the function that compiles the
    same case in the child, called with the asv params and the device type."""

    unit = "seconds"

    def track_cold_compile(self, *params):
        return measure.cold_compile_seconds(self.case.run, self.dev)

    def track_warm_compile(self, *params):
        prime = functools.partial(self.prime_compile, *params, self.dev.type)
        return measure.warm_compile_seconds(self.case.run, prime, self.dev)


class _WarmCase:
    """Setup for a workload class whose `_build(*params)` sets `self.case` (with `run()`)
    and `self.dev`: build, then one call, so compiling (from a warm cache after the first
    process) and warm-up stay outside what is measured."""

    def setup(self, *params):
        self._build(*params)
        self.case.run()
        measure.synchronize(self.dev)


class _CallTime(_WarmCase):
    """Seconds per `self.case.run()`. track_time is the device's own time: on a GPU, CUDA
    events around CUDA-graph replays where `_graph_replay(*params)` allows, around plain
    calls otherwise; track_caller_time is what a Python caller pays per call (host clock,
    no graph, one synchronize per sample). 20 samples after 3 warm-up calls: a call of a
    model or a layer lasts milliseconds."""

    unit = "seconds"

    def _graph_replay(self, *params) -> bool:
        return False

    def track_time(self, *params):
        graph = self.dev.type == "cuda" and self._graph_replay(*params)
        opts = {"cuda_graph": True} if graph else {}
        return measure.time_callable(self.case.run, [()], self.dev, samples=20, warmup=3,
                                     **opts).for_asv()

    def track_caller_time(self, *params):
        return measure.time_caller(self.case.run, [()], self.dev, samples=20,
                                   warmup=3).for_asv()


class _PeakMemory(_WarmCase):
    """Peak process RSS during one `self.case.run()`, model and inputs included."""

    unit = "bytes"

    def _peak(self):
        return measure.peak_memory(self.case.run, self.dev)

    def track_peak_rss(self, *params):
        return self._peak().rss


class _PeakCudaMemory(_PeakMemory):
    """Peak CUDA allocated and reserved bytes during one `self.case.run()`."""

    def setup(self, *params):
        if device().type != "cuda":
            raise Unavailable("CUDA memory needs a CUDA GPU")
        super().setup(*params)

    def track_peak_cuda_allocated(self, *params):
        return self._peak().cuda_allocated

    def track_peak_cuda_reserved(self, *params):
        return self._peak().cuda_reserved
