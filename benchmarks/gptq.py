"""GPTQ of one linear layer: time (on a GPU also its kernel time), compile cost and health,
CUDA memory, quality.

Each (metric x shape x scheme x blocksize x variant) runs in its own asv process; the class
`timeout` is the compile budget (compiling a whole block unrolls its column loop, and
upstream saw hours at block 128), so an overrun fails that parameter only.
"""

from kernelwatch import measure
from kernelwatch.workloads.gptq import case as gptq

from .common import (
    _CallTime,
    _FirstRun,
    _KernelTime,
    _PeakCuda,
    _PeakMemory,
    _WarmCompile,
    _Workload,
)


class _Gptq(_Workload, workload=gptq):
    pass


class GptqTime(_CallTime, _Gptq):
    """Seconds to quantize the layer once, compiled code warm (common._CallTime). On a GPU
    track_time reads CUDA events around the call (the column loop runs from the host, so its
    time there is its latency) and track_caller_time the host's clock, synchronized once per
    sample. 10 samples after 1 warm-up: a layer takes milliseconds (tiny, CPU) to seconds
    (Qwen2.5-3B down_proj, eager)."""

    version = "2"  # 2: CPU kernels on one pinned thread (common.pin_cpu_threads)
    timed_counts = {"samples": 10, "warmup": 1}


class GptqKernelTime(_KernelTime, _Gptq):
    """The GPU's own work in quantizing the layer once (common._KernelTime): GptqTime's
    track_time on a GPU is the latency of a column loop the host drives, which moves with
    the host between processes; this is what the device did meanwhile. GPU only."""

    version = "1"
    timed_counts = {"samples": 10, "warmup": 1}


class GptqFirstRun(_FirstRun, _Gptq):
    """The write-up's "first run": seconds of the first quantization in a fresh process, with
    fresh inductor and Triton caches (common._FirstRun). For compiled variants that is the
    cold compile plus one quantization; for `triton` its JIT; for eager just the first call.
    The report subtracts the steady time (GptqTime) to show the compile overhead."""

    version = "2"  # 2: CPU kernels on one pinned thread


class GptqCompile(_WarmCompile, _Gptq):
    """Warm compile (FX graph cache filled by a child process), and dynamo's health over one
    layer (graph breaks, unique graphs, recompiles), for the torch.compile variants. The
    cold compile is GptqFirstRun's."""

    version = "2"  # 2: without the cold compile, which GptqFirstRun records

    def _health(self):
        return measure.compile_health(self.case.compiled_code, [self.case.run])


class GptqMemory(_PeakMemory, _Gptq):
    """Peak process RSS while quantizing the layer (the CPU's memory figure)."""

    version = "1"


class GptqCudaMemory(_PeakCuda, _Gptq):
    """Peak CUDA allocated and reserved bytes while quantizing the layer."""

    version = "1"


class GptqAccuracy(_Gptq):
    """Quality on held-out activations, and agreement with the eager reference."""

    version = "2"
    unit = "relative"

    def setup(self, *params):
        self._build(*params)
        self.ref = self.case.eager_result()
        self.quality = self.case.quality(self.case.run(), self.ref)

    def track_output_error(self, *params):
        """||WX - QX|| / ||WX|| on held-out activations."""
        return self.quality.output_error

    def track_identical_codes(self, *params):
        """Fraction of quantized integers identical to eager's."""
        return self.quality.identical_codes

    track_identical_codes.unit = "fraction"

    def track_worse_than_eager(self, *params):
        """1 when the output error exceeds eager's by more than the stated tolerance: a
        variant that got faster by getting worse is flagged, not hidden."""
        return int(self.quality.worse_than_eager)

    track_worse_than_eager.unit = "flag"

    def track_gptq_loss(self, *params):
        """GPTQ's own loss of the eager reference for this case (the variant's loss is not
        exposed by every variant; its output error is)."""
        return self.ref.loss

    track_gptq_loss.unit = "loss"

    def track_rtn_fallback(self, *params):
        """1 when the Hessian was not positive definite and GPTQ fell back to
        round-to-nearest, as upstream does."""
        return int(self.ref.used_rtn_fallback)

    track_rtn_fallback.unit = "flag"
