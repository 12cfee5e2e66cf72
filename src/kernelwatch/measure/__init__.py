"""The one measuring core: time, memory, compile cost and health, accuracy.

Nothing else in kernelwatch times anything. This package knows torch but not asv or HTML:
results are plain dataclasses; `Samples.for_asv()` is the single place that speaks asv's
`{"samples": [...], "number": n}` form, which asv turns into median, 99% CI and quartiles.
Its names are used as `measure.<name>`; the modules hold one topic each:

- `timing`: `Samples`, the methods that read them, the host clock (`time_cpu`);
- `gpu`: CUDA events around calls or around a CUDA-graph replay (`time_cuda`);
- `profiler`: the GPU's busy time from torch.profiler (`time_cuda_kernels`), and the share
  of a call spent in a labelled region (`region_share`), and a call's time kernel by kernel
  (`kernel_times`);
- `device`: device time by a case's declared method (`time_device`), the caller's time
  (`time_caller`), and the check that takes both in turns (`check_device_time`);
- `memory`, `compiling`, `reference` (error against a reference), `generation` (token
  times), `process` (RSS and CPU use while something runs);
- `inject`: the test-only slowdown, which wraps what a timer measures from outside it.

Why a `track_` returning samples rather than asv's own `time_`: since asv_runner 0.3 a
class with `setup` times one call per sample with a host clock, so launch and sync overhead
dominate a 50 us GPU kernel. Here each sample times a calibrated number of calls.

Device time (`time_device`) is the GPU's own work, by one of two methods, and each result
says which (`Samples.method`):
- `cuda-graph`: CUDA events around a CUDA-graph replay of the calls: the launches are
  recorded once, so the GPU runs the kernels back to back with no host in between;
- `profiler-kernels`: for calls that cannot be captured (autograd, FP8 scaling state,
  graphs of their own), the time the GPU spent in the calls' kernels, copies and sets, from
  torch.profiler (CUPTI): the union of their intervals, so idle gaps while the GPU waits for
  the host are not counted. CUDA events around one synchronous call would count them: that
  is latency, and can exceed what a caller's back-to-back loop pays.
`time_caller` is the other clock: what a Python caller pays. `check_device_time` takes both,
interleaved, with the GPU's clocks and processes read between samples, and flags a device
time over the caller's beyond noise and a throttled or shared GPU.
"""

from kernelwatch.measure.compiling import (
    CompileHealth,
    cold_compile_seconds,
    cold_compile_seconds_new_process,
    compile_health,
    first_call_seconds,
    first_call_seconds_new_process,
    inductor_cache,
    warm_compile_seconds,
    warm_compile_seconds_new_process,
)
from kernelwatch.measure.device import (
    DEVICE_OVER_CALLER_MARGIN,
    DISPATCH_SAMPLE_SECONDS,
    DeviceCheck,
    check_device_time,
    copy_bandwidth,
    device_exceeds_caller,
    dispatch_seconds,
    time_callable,
    time_caller,
    time_device,
)
from kernelwatch.measure.generation import TokenClock, TokenTimes, time_generations
from kernelwatch.measure.gpu import time_cuda
from kernelwatch.measure.inject import INJECT_SLOWDOWN_ENV, injected_slowdown
from kernelwatch.measure.memory import MemoryPeak, peak_memory
from kernelwatch.measure.process import ProcessUsage, release_freed_memory, sample_process
from kernelwatch.measure.profiler import (
    KernelTime,
    kernel_times,
    region_share,
    time_cuda_kernels,
    union_length,
)
from kernelwatch.measure.reference import Accuracy, accuracy
from kernelwatch.measure.timing import (
    UNSTABLE_CV,
    Samples,
    l2_cache_bytes,
    synchronize,
    time_cpu,
)
from kernelwatch.time_methods import (
    CUDA_EVENTS,
    CUDA_GRAPH,
    DECLARED_METHODS,
    DEVICE_METHODS,
    HOST_CLOCK,
    PROFILER_KERNELS,
)

__all__ = [
    "CUDA_EVENTS", "CUDA_GRAPH", "DECLARED_METHODS", "DEVICE_METHODS", "DEVICE_OVER_CALLER_MARGIN",
    "DISPATCH_SAMPLE_SECONDS",
    "HOST_CLOCK", "INJECT_SLOWDOWN_ENV", "PROFILER_KERNELS", "UNSTABLE_CV", "Accuracy",
    "CompileHealth", "DeviceCheck", "KernelTime", "MemoryPeak", "ProcessUsage", "Samples",
    "TokenClock", "TokenTimes", "accuracy", "check_device_time", "cold_compile_seconds",
    "cold_compile_seconds_new_process", "compile_health", "copy_bandwidth",
    "device_exceeds_caller", "dispatch_seconds", "first_call_seconds",
    "first_call_seconds_new_process",
    "inductor_cache", "injected_slowdown", "l2_cache_bytes", "kernel_times", "peak_memory",
    "region_share", "release_freed_memory", "sample_process", "synchronize", "time_callable",
    "time_caller", "time_cpu", "time_cuda", "time_cuda_kernels", "time_device", "time_generations",
    "union_length", "warm_compile_seconds", "warm_compile_seconds_new_process",
]
