"""GPTQ of one linear layer: time, compile cost and health, CUDA memory, quality.

Each (metric x shape x scheme x blocksize x variant) runs in its own asv process; the class
`timeout` is the compile budget (compiling a whole block unrolls its column loop, and upstream
saw hours at block 128), so an overrun fails that parameter only.
"""

import functools
import os

from kernelwatch import measure
from kernelwatch.errors import Unavailable
from kernelwatch.workloads import gptq

from .common import _CompileHealth, device, pin_cpu_threads


class _Gptq:
    params = list(gptq.PARAMS.values())
    param_names = list(gptq.PARAMS)
    timeout = float(os.environ.get("KERNELWATCH_BENCHMARK_TIMEOUT", "600"))

    def _build(self, shape, scheme, blocksize, variant):
        self.dev = device()
        pin_cpu_threads(self.dev)
        self.case = gptq.build_case(shape, scheme, blocksize, variant, self.dev)

    def _build_warm(self, *params):
        """Build, then quantize once: compiles (warm cache after the first process)."""
        self._build(*params)
        self.case.quantize()
        measure.synchronize(self.dev)


class GptqTime(_Gptq):
    """Seconds to quantize the layer once (a steady-state call, compiled code warm).
    Version 2: CPU kernels on one pinned thread (benchmarks/common.py)."""

    version = "2"
    unit = "seconds"

    def setup(self, *params):
        self._build_warm(*params)

    def track_time(self, *params):
        # A whole layer is milliseconds (tiny, CPU) to seconds (Qwen2.5-3B down_proj, eager).
        return measure.time_callable(self.case.quantize, [()], self.dev,
                                     samples=10, warmup=1).for_asv()

    def track_caller_time(self, *params):
        """The same call on the host's clock, synchronized once per sample: what a Python
        caller pays (track_time reads CUDA events on a GPU)."""
        return measure.time_caller(self.case.quantize, [()], self.dev, samples=10,
                                   warmup=1).for_asv()


class GptqFirstRun(_Gptq):
    """The write-up's "first run": seconds of the first quantization in a fresh process, with
    fresh inductor and Triton caches. For compiled variants that is the cold compile plus one
    quantization; for `triton` its JIT; for eager just the first call. The report subtracts
    the steady time (GptqTime) to show the compile overhead. Version 2: one pinned CPU
    thread."""

    version = "2"
    unit = "seconds"

    def setup(self, *params):
        self._build(*params)

    def track_first_run(self, *params):
        return measure.cold_compile_seconds(self.case.quantize, self.dev)


class GptqCompile(_CompileHealth, _Gptq):
    """Warm compile (FX graph cache filled by a child process), and dynamo's health over one
    layer (graph breaks, unique graphs, recompiles), for the torch.compile variants."""

    version = "2"
    unit = "seconds"

    def setup(self, shape, scheme, blocksize, variant):
        if not variant.startswith("compile"):
            raise Unavailable(f"{variant} is not compiled by torch.compile")
        self._build(shape, scheme, blocksize, variant)

    def track_warm_compile(self, *params):
        prime = functools.partial(gptq.prime_compile, *params, self.dev.type)
        return measure.warm_compile_seconds(self.case.quantize, prime, self.dev)

    def _health(self):
        return measure.compile_health(self.case.compiled_code, [self.case.quantize])


class GptqMemory(_Gptq):
    """Peak process RSS while quantizing the layer (the CPU's memory figure)."""

    version = "1"
    unit = "bytes"

    def setup(self, *params):
        self._build_warm(*params)

    def track_peak_rss(self, *params):
        return measure.peak_memory(self.case.quantize, self.dev).rss


class GptqCudaMemory(_Gptq):
    """Peak CUDA allocated and reserved bytes while quantizing the layer."""

    version = "1"
    unit = "bytes"

    def setup(self, *params):
        if device().type != "cuda":
            raise Unavailable("CUDA memory needs a CUDA GPU")
        self._build_warm(*params)

    def track_peak_cuda_allocated(self, *params):
        return measure.peak_memory(self.case.quantize, self.dev).cuda_allocated

    def track_peak_cuda_reserved(self, *params):
        return measure.peak_memory(self.case.quantize, self.dev).cuda_reserved


class GptqAccuracy(_Gptq):
    """Quality on held-out activations, and agreement with the eager reference."""

    version = "2"
    unit = "relative"

    def setup(self, *params):
        self._build(*params)
        self.ref = self.case.eager_result()
        self.quality = self.case.quality(self.case.quantize(), self.ref)

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
