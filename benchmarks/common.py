"""Fixtures shared by the benchmark files. Benchmark files declare; kernelwatch measures."""

import functools
import os
import sys

import torch

from kernelwatch import environment, measure
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


def gpu_monitor(dev: torch.device) -> environment.GpuMonitor | None:
    """Readings of the GPU's clocks and processes between a timing's samples (GPU only)."""
    return environment.GpuMonitor() if dev.type == "cuda" else None


def for_asv(samples: measure.Samples) -> dict:
    """The samples as asv records them. A GPU's conditions that flag them (throttled,
    shared, not observed) go to stderr, which `kernelwatch run` keeps in asv's log; the
    recorded flags are the device check's (_DeviceCheck)."""
    c = samples.conditions
    if c is not None and c.flags:
        print(f"kernelwatch: measured while {environment.describe_flags(c.flags)}: "
              f"{c.describe()}", file=sys.stderr)
    return samples.for_asv()


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
    """Seconds per `self.case.run()`. track_time is the device's own time
    (measure.time_device): on a GPU by the method the workload class's
    `_device_method(*params)` names (CUDA-graph replay where the case can be captured, else
    the profiler's kernel time); track_caller_time is what a Python caller pays per call
    (host clock, no graph, one synchronize per sample). 20 samples after 3 warm-up calls:
    a call of a model or a layer lasts milliseconds."""

    unit = "seconds"

    def track_time(self, *params):
        return for_asv(measure.time_device(
            self.case.run, [()], self.dev, method=self._device_method(*params), samples=20,
            warmup=3, monitor=gpu_monitor(self.dev)))

    def track_caller_time(self, *params):
        return for_asv(measure.time_caller(self.case.run, [()], self.dev, samples=20,
                                           warmup=3, monitor=gpu_monitor(self.dev)))


class _DeviceCheck:
    """track_device_check: device time (by `_device_method(*params)`) and caller time of
    the case taken in turns in one process, with the GPU's SM clock, clock-event reasons
    and other processes read between samples (measure.check_device_time). The value is
    environment's flag bits, 0 when nothing is wrong: device time over caller time beyond
    noise, throttled, power-capped, shared, not observed. The readings go to stderr (asv's
    log). GPU only: on a CPU both clocks are one. Needs `_build(*params)` (self.case.run,
    self.dev) or a `_checked()` of its own returning (fn, input_sets)."""

    unit = "flags"

    def setup(self, *params):
        if device().type != "cuda":
            raise Unavailable("the device-time check needs a CUDA GPU (on a CPU device time "
                              "and caller time are one clock)")
        self._build(*params)
        fn, sets = self._checked()
        fn(*sets[0])  # compile (warm cache after the first process) and warm up
        measure.synchronize(self.dev)

    def _checked(self):
        return self.case.run, [()]

    def track_device_check(self, *params):
        fn, sets = self._checked()
        check = measure.check_device_time(fn, sets, self.dev,
                                          method=self._device_method(*params))
        print(f"kernelwatch: {check.describe()}", file=sys.stderr)
        return check.flags


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


class _KernelInventory:
    """The kernels one call launches (kernelwatch.inventory): their count as an asv series,
    their names and the generated code's hash beside the results (kernelwatch.
    inventory_file), so a lost fusion shows as a change however little the time moved. A
    workload's class defines `_first_call()` (one call of a case not yet called, so a
    compiled variant compiles inside it) and `_device`."""

    unit = "count"

    def track_kernel_count(self, *params):
        from kernelwatch import inventory, inventory_file

        found = inventory.of_first_call(self._first_call, self._device)
        workload = type(self).__module__.rsplit(".", 1)[-1]
        inventory_file.record(f"{workload}({', '.join(map(str, params))})", found.as_dict())
        return found.count
