"""RoPE (q and k of one attention layer): time, compile cost and health, memory, accuracy.

Every (metric x shape x form x dtype x variant) runs in its own asv process, so a compile
that overruns `timeout` fails that one parameter and nothing else. Combinations that cannot
run here (a GPU-only variant on a CPU, fp32 on a GPU) are skipped in `setup` with a reason.
"""

from kernelwatch import measure
from kernelwatch.workloads.rope import case as rope

from .common import (
    _CallTime,
    _CompileCost,
    _DeviceCheck,
    _KernelInventory,
    _PeakCudaMemory,
    _PeakMemory,
    _Workload,
)


class _Rope(_Workload, workload=rope):
    pass


class _RotatedInputs:
    """Input sets four times the L2 size, so each call reads HBM."""

    def _build_options(self) -> dict:
        return {"rotate_bytes": 4 * measure.l2_cache_bytes(self.dev)}


class RopeTime(_RotatedInputs, _CallTime, _Rope):
    """Steady-state seconds per call (common._CallTime), rotating through input sets four
    times the L2 size: track_time is the kernel's own time, on a GPU CUDA events around
    CUDA-graph replays; track_caller_time is what a Python loop calling the kernel pays (no
    CUDA graph, host clock, synchronized once per sample; on the CPU the same clock).
    Sample counts are measure's defaults: a call lasts microseconds."""

    version = "2"  # 2: CPU kernels on one pinned thread (common.pin_cpu_threads)
    timed_counts = {}


class RopeDeviceCheck(_RotatedInputs, _DeviceCheck, _Rope):
    """Device time against caller time and the GPU's conditions in one process
    (common._DeviceCheck), on the inputs RopeTime rotates through."""

    version = "1"


class RopeCompile(_CompileCost, _Rope):
    """Compile cost (cold: fresh inductor cache; warm: FX graph cache filled by a child
    process) and compile health over the timed shape plus one call at half the length."""

    version = "1"

    def _health(self):
        other = rope.other_seq_len_inputs(self.case)
        calls = [self.case.run, self.case.run, lambda: self.case.call(*other)]
        return measure.compile_health(self.case.eager_fn.__code__, calls)


class RopeMemory(_PeakMemory, _Rope):
    """Peak process RSS during one call, inputs included."""

    version = "1"


class RopeCudaMemory(_PeakCudaMemory, _Rope):
    """Peak CUDA allocated and reserved bytes, and the process's RSS, during one call,
    inputs included."""

    version = "1"


class RopeAccuracy(_Rope):
    """Error against float64 on fresh random inputs (not the timed ones)."""

    version = "1"
    unit = "relative"

    def setup(self, shape, form, dtype, variant):
        self._build(shape, form, dtype, variant)
        inputs = self.case.fresh_inputs(seed=1234)
        # The reference first: liger rotates its inputs in place.
        reference = rope.reference(form, inputs)
        self.error = measure.accuracy(self.case.call(*inputs), reference)

    def track_rel_l2_error(self, *params):
        return self.error.rel_l2

    def track_max_abs_error(self, *params):
        return self.error.max_abs

    track_max_abs_error.unit = "absolute"


class RopeKernels(_KernelInventory, _Rope):
    """The kernels one call launches and their count (a compiled variant's first call
    compiles; eager's are the aten operators it calls)."""

    version = "1"
