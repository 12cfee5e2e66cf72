"""The one measuring core: time, memory, compile cost and health, accuracy.

Nothing else in kernelwatch times anything. This module knows torch but not asv or HTML:
results are plain dataclasses; `Samples.for_asv()` is the single place that speaks asv's
`{"samples": [...], "number": n}` form, which asv turns into median, 99% CI and quartiles.

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

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from kernelwatch import environment
from kernelwatch.errors import KernelwatchError

# A sample whose coefficient of variation exceeds this is flagged as unstable (pyperf's habit:
# warn rather than print a noisy number as if it were fine).
UNSTABLE_CV = 0.10


# How a sample's seconds were read (Samples.method).
HOST_CLOCK = "host-clock"  # perf_counter; on a GPU synchronised before and after (caller time)
CUDA_GRAPH = "cuda-graph"  # CUDA events around a CUDA-graph replay
PROFILER_KERNELS = "profiler-kernels"  # the GPU's busy time in the calls' kernels (CUPTI)
CUDA_EVENTS = "cuda-events"  # CUDA events around plain calls (time_callable without a graph)
DEVICE_METHODS = (CUDA_GRAPH, PROFILER_KERNELS)

# A device time over the caller's time by more than this, with the device's lower quartile
# above the caller's upper quartile, is flagged: the GPU cannot do more work than the caller
# waits for, so such a device time counts something else (launch gaps, the host).
DEVICE_OVER_CALLER_MARGIN = 0.03


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


def device_exceeds_caller(device: Samples, caller: Samples,
                          margin: float = DEVICE_OVER_CALLER_MARGIN) -> bool:
    """Whether a device time exceeds the caller's time beyond noise: its median by more
    than `margin`, and its lower quartile above the caller's upper quartile."""
    return (device.median > caller.median * (1 + margin)
            and device.quantile(0.25) > caller.quantile(0.75))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call_all(fn: Callable, input_sets: Sequence[tuple], count: int, start: int = 0) -> None:
    n = len(input_sets)
    for i in range(count):
        fn(*input_sets[(start + i) % n])


# Test-only: a slowdown of known size, for checking that a regression check catches it
# (`kernelwatch compare`, `kernelwatch fidelity`). Never set it for real measurements.
# - CPU (time_cpu): each timed call is followed by busy work lasting this fraction of the
#   call's own time.
# - GPU (time_cuda, time_caller): each sample ends with a GPU spin kernel lasting this
#   fraction of the sample's uninjected time, so device time and caller time both grow.
# - Generation (TokenClock): each token waits this fraction of its own interval.
INJECT_SLOWDOWN_ENV = "KERNELWATCH_INJECT_SLOWDOWN"


def injected_slowdown() -> float:
    """The test-only slowdown fraction now in force (0 for real measurements). Read at
    every measurement, so one process can measure with and without it."""
    return float(os.environ.get(INJECT_SLOWDOWN_ENV) or 0)


def _with_injected_slowdown(fn: Callable) -> Callable:
    fraction = injected_slowdown()
    if fraction <= 0:
        return fn

    def slowed(*args):
        t0 = time.perf_counter()
        out = fn(*args)
        until = time.perf_counter() + fraction * (time.perf_counter() - t0)
        while time.perf_counter() < until:
            pass
        return out

    return slowed


_gpu_spin_cycles_per_second: dict[int, float] = {}


def _gpu_spin(device: torch.device, seconds: float) -> Callable[[], None]:
    """A launch of `torch.cuda._sleep` lasting about `seconds` on the GPU: the injected
    slowdown's GPU work. Its rate (cycles per second) is measured once per device."""
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


def _injected_gpu_work(sample_seconds: Callable[[], float], device: torch.device
                       ) -> Callable[[], None] | None:
    """None for real measurements; else the spin launch to end each sample with, sized from
    the median of five uninjected samples (`sample_seconds()` times one)."""
    fraction = injected_slowdown()
    if fraction <= 0:
        return None
    base = statistics.median(sample_seconds() for _ in range(5))
    return _gpu_spin(device, fraction * base)


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
    fn = _with_injected_slowdown(fn)
    _call_all(fn, input_sets, warmup)
    number = 1
    while True:
        t0 = time.perf_counter()
        _call_all(fn, input_sets, number)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_sample_seconds or number >= 1 << 20:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, math.ceil(min_sample_seconds / elapsed)))
    per_call = []
    for s in range(samples):
        t0 = time.perf_counter()
        _call_all(fn, input_sets, number, start=s * number)
        per_call.append((time.perf_counter() - t0) / number)
    return Samples(per_call, number)


def l2_cache_bytes(device: torch.device) -> int:
    """The GPU's L2 size (0 on the CPU): input rotation and L2 flushes are sized from it."""
    if device.type != "cuda":
        return 0
    return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 64 << 20)


def _l2_flush_buffer(device: torch.device) -> torch.Tensor:
    return torch.empty(2 * l2_cache_bytes(device), dtype=torch.uint8, device=device)


def _calls_per_sample(timed: Callable[[int, int], float], n_sets: int,
                      min_sample_seconds: float) -> int:
    """Calls per sample so a sample lasts at least `min_sample_seconds` (`timed(count,
    offset)` returns the seconds of `count` calls), rounded to whole rotations so every
    sample (and every graph) touches every input set equally often."""
    number = n_sets
    while timed(number, 0) < min_sample_seconds and number < 1 << 16:
        number *= 2
    return math.ceil(number / n_sets) * n_sets


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
    _call_all(fn, input_sets, warmup)
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    if flush_l2:
        flush = _l2_flush_buffer(device)
        per_call = []
        for s in range(samples):
            flush.zero_()
            start.record()
            fn(*input_sets[s % len(input_sets)])
            end.record()
            end.synchronize()
            per_call.append(start.elapsed_time(end) / 1e3)
        return Samples(per_call, 1, CUDA_EVENTS)

    extra: Callable[[], None] | None = None  # the test-only injected slowdown

    def timed(count: int, offset: int) -> float:
        start.record()
        _call_all(fn, input_sets, count, start=offset)
        if extra:
            extra()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    # Calibrated on plain launches.
    number = _calls_per_sample(timed, len(input_sets), min_sample_seconds)

    if cuda_graph:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            _call_all(fn, input_sets, len(input_sets))  # warm the side stream's allocator
        torch.cuda.current_stream(device).wait_stream(stream)
        with torch.cuda.graph(graph):
            _call_all(fn, input_sets, number)
        graph.replay()
        torch.cuda.synchronize(device)

        def replayed() -> float:
            start.record()
            graph.replay()
            if extra:
                extra()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        extra = _injected_gpu_work(replayed, device)
        return _monitored(lambda s: replayed() / number, samples, number, CUDA_GRAPH, monitor)

    extra = _injected_gpu_work(lambda: timed(number, 0), device)
    return _monitored(lambda s: timed(number, s * number) / number, samples, number,
                      CUDA_EVENTS, monitor)


def _monitored(take: Callable[[int], float], samples: int, number: int, method: str,
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


def _busy_seconds(prof) -> float:
    """Seconds the GPU spent in the profiled calls' kernels, copies and sets: the union of
    their intervals (the sum, when they ran on one stream). User annotations (the device
    copies of record_function ranges, compiled regions' names) are spans, not work."""
    intervals = []
    for e in prof.profiler.kineto_results.events():
        if e.device_type() != torch.autograd.DeviceType.CUDA:
            continue
        annotation, kind = (getattr(e, a, None) for a in ("is_user_annotation", "activity_type"))
        if (annotation and annotation()) or (
                kind and kind() not in ("kernel", "gpu_memcpy", "gpu_memset")):
            continue
        intervals.append((e.start_ns(), e.start_ns() + e.duration_ns()))
    return union_length(intervals) / 1e9


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
    from torch.profiler import ProfilerActivity, profile

    device = torch.device("cuda", torch.cuda.current_device())
    _call_all(fn, input_sets, warmup)
    torch.cuda.synchronize(device)
    extra: Callable[[], None] | None = None  # the test-only injected slowdown

    def busy(count: int, offset: int) -> float:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            _call_all(fn, input_sets, count, start=offset)
            if extra:
                extra()
            torch.cuda.synchronize(device)
        seconds = _busy_seconds(prof)
        if seconds <= 0:
            raise KernelwatchError("the profiler recorded no GPU work for the call: is it "
                                   "running on the GPU?")
        return seconds

    busy(len(input_sets), 0)  # the profiler's first start (CUPTI) is slow: not a sample
    number = _calls_per_sample(busy, len(input_sets), min_sample_seconds)
    extra = _injected_gpu_work(lambda: busy(number, 0), device)
    return _monitored(lambda s: busy(number, s * number) / number, samples, number,
                      PROFILER_KERNELS, monitor)


def time_device(
    fn: Callable, input_sets: Sequence[tuple], device: torch.device, *, method: str,
    samples: int | None = None, warmup: int | None = None,
    monitor: environment.GpuMonitor | None = None,
) -> Samples:
    """The device's own seconds per call: on a GPU by `method` (CUDA_GRAPH or
    PROFILER_KERNELS, see the module's docstring), on the CPU the host clock (time_cpu).
    A case whose method is CUDA_GRAPH must be capturable; nothing falls back silently, so
    the method a result declares is the one it used."""
    if method not in DEVICE_METHODS:
        raise ValueError(f"device-time method {method!r}: one of {', '.join(DEVICE_METHODS)}")
    counts = {k: v for k, v in (("samples", samples), ("warmup", warmup)) if v is not None}
    if device.type != "cuda":
        return time_cpu(fn, input_sets, **counts)
    if method == CUDA_GRAPH:
        return time_cuda(fn, input_sets, cuda_graph=True, monitor=monitor, **counts)
    return time_cuda_kernels(fn, input_sets, monitor=monitor, **counts)


def time_callable(
    fn: Callable, input_sets: Sequence[tuple], device: torch.device, *,
    samples: int | None = None, warmup: int | None = None, **gpu_options
) -> Samples:
    """Time on whichever clock suits the device (see time_cpu / time_cuda). `samples` and
    `warmup` apply to both; slow kernels (a whole GPTQ layer) pass fewer."""
    counts = {k: v for k, v in (("samples", samples), ("warmup", warmup)) if v is not None}
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

    `time_callable` on a GPU replays CUDA graphs (where asked) and reads CUDA events: the
    kernel's own cost. A model calling the kernel pays dispatch, guards and the compiled
    wrapper on top; when those outlast the kernel, the GPU waits for the host and this is
    the figure the caller sees. On the CPU there is no difference: both are `time_cpu`.
    """
    if device.type != "cuda":
        return time_cpu(fn, input_sets, samples=samples, warmup=warmup,
                        min_sample_seconds=min_sample_seconds)
    _call_all(fn, input_sets, warmup)

    extra: Callable[[], None] | None = None  # the test-only injected slowdown

    def timed(count: int, offset: int) -> float:
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        _call_all(fn, input_sets, count, start=offset)
        if extra:
            extra()
        torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    number = _calls_per_sample(timed, len(input_sets), min_sample_seconds)
    extra = _injected_gpu_work(lambda: timed(number, 0), device)
    return _monitored(lambda s: timed(number, s * number) / number, samples, number,
                      HOST_CLOCK, monitor)


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


# ----------------------------------------------------------------------------- memory


@dataclass
class MemoryPeak:
    """Peak bytes during the measured calls. CUDA fields are 0 on the CPU."""

    cuda_allocated: int
    cuda_reserved: int
    rss: int


def _reset_rss_peak() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak covers only the
    # region measured and not the import of torch or the building of inputs.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_peak() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(run: Callable[[], object], device: torch.device) -> MemoryPeak:
    """Peak CUDA allocated/reserved bytes and peak process RSS while `run()` executes.

    Peaks include the live inputs, as a user of the kernel would see them.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    _reset_rss_peak()
    run()
    synchronize(device)
    if device.type == "cuda":
        return MemoryPeak(
            torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device),
            _rss_peak(),
        )
    return MemoryPeak(0, 0, _rss_peak())


# ----------------------------------------------------------------------------- compile


@contextlib.contextmanager
def inductor_cache(path: str) -> Iterator[str]:
    """Point inductor's and Triton's on-disk caches at `path` for the duration."""
    keys = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    os.environ["TRITON_CACHE_DIR"] = os.path.join(path, "triton")
    try:
        yield path
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def first_call_seconds(call: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - t0


def cold_compile_seconds(first_call: Callable[[], object], device: torch.device) -> float:
    """Seconds of the first call of a not-yet-compiled function, with fresh inductor and
    Triton caches so no earlier run's FX graph or kernel can hide the cost.

    Run it in a fresh process (asv gives each benchmark one): in-process caches survive
    `torch._dynamo.reset()` and would make a second measurement look warm.
    """
    with tempfile.TemporaryDirectory(prefix="kernelwatch-cold-") as d, inductor_cache(d):
        return first_call_seconds(first_call, device)


def warm_compile_seconds(
    first_call: Callable[[], object], prime: Callable[[], object], device: torch.device
) -> float:
    """Seconds of the first call when the on-disk FX graph cache is already warm: what a
    user sees on the second launch of a job. `prime` runs the same compile in a spawned
    child process that fills a fresh cache; this process then compiles against it.
    """
    with tempfile.TemporaryDirectory(prefix="kernelwatch-warm-") as d, inductor_cache(d):
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=prime)
        child.start()
        child.join()
        if child.exitcode != 0:
            raise KernelwatchError(f"priming the compile cache failed (exit {child.exitcode})")
        return first_call_seconds(first_call, device)


@dataclass
class CompileHealth:
    graph_breaks: int
    unique_graphs: int
    recompiles: int


def compile_health(code: object, calls: Sequence[Callable[[], object]]) -> CompileHealth:
    """Dynamo's view of `calls`: graph breaks and unique graphs from its counters (the
    difference across the calls), and recompiles as extra cache entries on `code`, the
    code object of the function that was compiled.
    """
    from torch._dynamo import eval_frame
    from torch._dynamo.utils import counters

    breaks_before = sum(counters["graph_break"].values())
    graphs_before = counters["stats"]["unique_graphs"]
    for call in calls:
        call()
    entries = len(eval_frame._debug_get_cache_entry_list(code))
    return CompileHealth(
        graph_breaks=sum(counters["graph_break"].values()) - breaks_before,
        unique_graphs=counters["stats"]["unique_graphs"] - graphs_before,
        recompiles=max(entries - 1, 0),
    )


def region_share(run: Callable[[], object], whole_label: str, region_label: str,
                 device: torch.device, *, calls: int = 5, warmup: int = 2) -> float:
    """The share of a call's time spent inside a region, from torch.profiler: `run` marks
    the whole call and the region with `torch.profiler.record_function(label)` ranges (the
    region may be entered several times per call). On a GPU the ranges' device time (the
    kernels they launched), on the CPU their host time. The write-up's "tensor ops %"."""
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
    whole = totals[whole_label]
    return totals[region_label] / whole if whole else math.nan


# ----------------------------------------------------------------------------- accuracy


@dataclass
class Accuracy:
    """Error of an output against a float64 reference, over all output tensors together."""

    rel_l2: float
    max_abs: float

    def within(self, rel_l2_tolerance: float) -> bool:
        return math.isfinite(self.rel_l2) and self.rel_l2 <= rel_l2_tolerance


def _flat(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def accuracy(output: object, reference: object) -> Accuracy:
    outs, refs = _flat(output), _flat(reference)
    if len(outs) != len(refs):
        raise ValueError(f"{len(outs)} outputs against {len(refs)} reference tensors")
    err_sq = ref_sq = 0.0
    max_abs = 0.0
    for o, r in zip(outs, refs, strict=True):
        if o.shape != r.shape:
            raise ValueError(f"output shape {tuple(o.shape)} != reference {tuple(r.shape)}")
        diff = o.detach().to("cpu", torch.float64) - r.detach().to("cpu", torch.float64)
        err_sq += float(diff.square().sum())
        ref_sq += float(r.detach().to("cpu", torch.float64).square().sum())
        worst = float(diff.abs().max()) if diff.numel() else 0.0
        # NaN must never pass: max() would silently keep the old value for a NaN.
        max_abs = math.inf if math.isnan(worst) else max(max_abs, worst)
    rel = math.sqrt(err_sq / ref_sq) if ref_sq > 0 else math.sqrt(err_sq)
    return Accuracy(rel_l2=rel, max_abs=max_abs)


# ----------------------------------------------------------------------------- generation


@dataclass
class TokenTimes:
    """Seconds from the start of one generate call to the arrival of each new token."""

    arrivals: list[float]

    @property
    def ttft(self) -> float:
        """Time to first token: the prompt's prefill plus the first sampling step."""
        return self.arrivals[0]

    @property
    def total(self) -> float:
        return self.arrivals[-1]

    @property
    def decode_intervals(self) -> list[float]:
        """Seconds per new token after the first: the decode steps."""
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


class TokenClock:
    """Handed to a generation loop, which calls `tick()` as each new token is ready on the
    host (after the device produced it: a streamer's `.cpu()` has synchronised)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.arrivals: list[float] = []
        self._slowdown = injected_slowdown()  # test-only; 0 for real measurements

    def tick(self) -> None:
        now = time.perf_counter() - self._start
        if self._slowdown > 0:
            last = self.arrivals[-1] if self.arrivals else 0.0
            until = time.perf_counter() + self._slowdown * (now - last)
            while time.perf_counter() < until:
                pass
            now = time.perf_counter() - self._start
        self.arrivals.append(now)


def time_generations(generate: Callable[[Callable[[], None]], object], *,
                     min_repeats: int = 2, max_repeats: int = 5,
                     budget_seconds: float = 30.0) -> list[TokenTimes]:
    """Time whole generations: `generate(on_token)` runs one and calls `on_token()` per new
    token. Repeats at least `min_repeats` times, and more (up to `max_repeats`) while the
    time spent stays under `budget_seconds`, so a 1.5B model on one core still finishes and
    a small one gets a spread. Warm the generator up before calling this."""
    runs: list[TokenTimes] = []
    spent = 0.0
    while len(runs) < min_repeats or (len(runs) < max_repeats and spent < budget_seconds):
        clock = TokenClock()
        generate(clock.tick)
        if not clock.arrivals:
            raise ValueError("the generation reported no tokens")
        runs.append(TokenTimes(clock.arrivals))
        spent += clock.arrivals[-1]
    return runs


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
