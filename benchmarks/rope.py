"""RoPE (q and k of one attention layer): time, compile cost and health, memory, accuracy.

Every (metric x shape x form x dtype x variant) runs in its own asv process, so a compile
that overruns `timeout` fails that one parameter and nothing else. Combinations that cannot
run here (a GPU-only variant on a CPU, fp32 on a GPU) are skipped in `setup` with a reason.
"""

import functools
import os

from kernelwatch import measure, variants
from kernelwatch.errors import Unavailable
from kernelwatch.workloads import rope

from .common import (
    _CompileHealth,
    _DeviceCheck,
    _KernelInventory,
    device,
    for_asv,
    gpu_monitor,
    pin_cpu_threads,
)


class _Rope:
    params = list(rope.PARAMS.values())
    param_names = list(rope.PARAMS)
    # The compile budget: asv's per-benchmark timeout covers import, input building and a
    # compile. A compile that takes longer is recorded as failed for its parameter, and the
    # suite goes on. Read at discovery, so `KERNELWATCH_BENCHMARK_TIMEOUT=120 asv run` works.
    timeout = float(os.environ.get("KERNELWATCH_BENCHMARK_TIMEOUT", "600"))

    def _build(self, shape, form, dtype, variant, **kw):
        self.dev = device()
        pin_cpu_threads(self.dev)
        self.case = rope.build_case(shape, form, dtype, variant, self.dev, **kw)
        self.args = self.case.input_sets[0]

    def _device_method(self, *params):
        return rope.DEVICE_METHOD

    def _rotated(self, *params):
        """Built with input sets four times the L2 size, so each call reads HBM."""
        _Rope._build(self, *params, rotate_bytes=4 * measure.l2_cache_bytes(device()))


class RopeTime(_Rope):
    """Steady-state seconds per call. track_time is the kernel's own (device) time: on a GPU,
    CUDA events around CUDA-graph replays (measure.time_device), rotating through input sets
    four times the L2 size, so each call reads HBM. track_caller_time is what a Python
    caller pays. Version 2: CPU kernels on one pinned thread (benchmarks/common.py)."""

    version = "2"
    unit = "seconds"

    def setup(self, shape, form, dtype, variant):
        self._rotated(shape, form, dtype, variant)
        self.case.fn(*self.args)  # compile (warm cache after the first process) and warm up
        measure.synchronize(self.dev)

    def track_time(self, shape, form, dtype, variant):
        return for_asv(measure.time_device(
            self.case.fn, self.case.input_sets, self.dev, method=self._device_method(),
            monitor=gpu_monitor(self.dev)))

    def track_caller_time(self, shape, form, dtype, variant):
        """What a Python loop calling the kernel pays per call: no CUDA graph, host clock,
        synchronized once per sample. On the CPU the same as track_time."""
        return for_asv(measure.time_caller(self.case.fn, self.case.input_sets, self.dev,
                                           monitor=gpu_monitor(self.dev)))


class RopeDeviceCheck(_DeviceCheck, _Rope):
    """Device time against caller time and the GPU's conditions in one process
    (common._DeviceCheck), on the inputs RopeTime rotates through."""

    version = "1"

    def _build(self, *params):
        self._rotated(*params)

    def _checked(self):
        return self.case.fn, self.case.input_sets


class RopeCompile(_CompileHealth, _Rope):
    """Compile cost (cold: fresh inductor cache; warm: FX graph cache filled by a child
    process) and compile health over the timed shape plus one call at half the length."""

    version = "1"
    unit = "seconds"

    def setup(self, shape, form, dtype, variant):
        if not variants.is_compiled(variant):
            raise Unavailable(f"{variant} is not compiled")
        self._build(shape, form, dtype, variant)
        self.first_call = functools.partial(self.case.fn, *self.args)

    def track_cold_compile(self, shape, form, dtype, variant):
        return measure.cold_compile_seconds(self.first_call, self.dev)

    def track_warm_compile(self, shape, form, dtype, variant):
        prime = functools.partial(rope.prime_compile, shape, form, dtype, variant, self.dev.type)
        return measure.warm_compile_seconds(self.first_call, prime, self.dev)

    def _health(self):
        other = rope.other_seq_len_inputs(self.case)
        calls = [self.first_call, self.first_call, functools.partial(self.case.fn, *other)]
        return measure.compile_health(self.case.eager_fn.__code__, calls)


class RopeMemory(_Rope):
    """Peak process RSS during one call, inputs included."""

    version = "1"
    unit = "bytes"

    def setup(self, shape, form, dtype, variant):
        self._build(shape, form, dtype, variant)
        self.case.fn(*self.args)
        measure.synchronize(self.dev)

    def _peak(self):
        return measure.peak_memory(lambda: self.case.fn(*self.args), self.dev)

    def track_peak_rss(self, *params):
        return self._peak().rss


class RopeCudaMemory(RopeMemory):
    """Peak CUDA allocated and reserved bytes during one call, inputs included."""

    version = "1"

    def setup(self, shape, form, dtype, variant):
        if device().type != "cuda":
            raise Unavailable("CUDA memory needs a CUDA GPU")
        super().setup(shape, form, dtype, variant)

    def track_peak_cuda_allocated(self, *params):
        return self._peak().cuda_allocated

    def track_peak_cuda_reserved(self, *params):
        return self._peak().cuda_reserved


class RopeAccuracy(_Rope):
    """Error against float64 on fresh random inputs (not the timed ones)."""

    version = "1"
    unit = "relative"

    def setup(self, shape, form, dtype, variant):
        self._build(shape, form, dtype, variant)
        inputs = self.case.fresh_inputs(seed=1234)
        # The reference first: liger rotates its inputs in place.
        reference = rope.reference(form, inputs)
        self.error = measure.accuracy(self.case.fn(*inputs), reference)

    def track_rel_l2_error(self, *params):
        return self.error.rel_l2

    def track_max_abs_error(self, *params):
        return self.error.max_abs

    track_max_abs_error.unit = "absolute"


class RopeKernels(_KernelInventory, _Rope):
    """The kernels one call launches and their count (a compiled variant's first call
    compiles; eager's are the aten operators it calls)."""

    version = "1"

    def setup(self, shape, form, dtype, variant):
        self._build(shape, form, dtype, variant)
        self._device = self.dev

    def _first_call(self):
        return self.case.fn(*self.args)
