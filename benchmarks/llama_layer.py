"""One Llama decoder layer: eager, surgical and full compilation, forward and forward+backward,
torch or TransformerEngine linears: time, the compiled region's share, compile cost and
health, memory, and error against eager and against float64.

Every (metric x shape x seq_len x backend x pass x variant) runs in its own asv process, so
a compile that overruns `timeout`, or a layer that runs out of memory, fails that one
parameter only. What cannot run here (TE without transformer_engine, CUDA graphs on a CPU)
is skipped in `setup` with the reason.
"""

from kernelwatch import measure
from kernelwatch.errors import Unavailable
from kernelwatch.workloads.llama_layer import case as llama_layer

from .common import (
    _CallTime,
    _CompileCost,
    _DeviceCheck,
    _KernelInventory,
    _PeakCudaMemory,
    _PeakMemory,
    _Workload,
)


class _Layer(_Workload, workload=llama_layer):
    pass


class LayerTime(_CallTime, _Layer):
    """Seconds per call of the pass, device time and caller time (common._CallTime). Device
    time replays CUDA graphs for the torch backend's forward only; autograd,
    reduce-overhead and TE are the profiler's kernel time of plain calls
    (llama_layer.device_time_method)."""

    version = "2"  # 2: the uncapturable cases' device time is the profiler's kernel time


class LayerDeviceCheck(_DeviceCheck, _Layer):
    """Device time against caller time and the GPU's conditions in one process
    (common._DeviceCheck)."""

    version = "1"


class LayerKernels(_KernelInventory, _Layer):
    """The kernels one call of the pass launches and their count (common._KernelInventory):
    a compiled variant's first call compiles and its generated code is read; eager's are the
    profiler's list. A lost fusion shows here even where the time moves within the noise."""

    version = "1"


class LayerCompiledShare(_Layer):
    """The share of the layer's forward time spent in what the surgical variant compiles
    (RoPE and the head reshapes), from torch.profiler ranges: the write-up's "tensor ops %".
    Under eager it says how much surgical compilation could at best save; under surgical,
    what is left of it."""

    version = "1"
    unit = "ratio"

    def setup(self, shape, seq_len, backend, pass_, variant):
        if variant not in ("eager", "surgical"):
            raise Unavailable(f"{variant} compiles the whole layer (its share is 1)")
        if pass_ != "forward":
            raise Unavailable("the share is of the forward pass (the backward of the region "
                              "runs in autograd's engine, outside its profiler range)")
        self._build(shape, seq_len, backend, pass_, variant, label_regions=True)

    def track_compiled_share(self, *params):
        return measure.region_share(self.case.run, llama_layer.LAYER_LABEL,
                                    llama_layer.SURGICAL_LABEL, self.dev)


class LayerCompile(_CompileCost, _Layer):
    """Compile cost (cold: fresh inductor cache; warm: FX graph cache filled by a child
    process) and compile health over two calls at the timed length and one at half of it:
    a recompile there is the dynamic-shape behaviour a changing sequence length meets."""

    version = "1"

    def _health(self):
        half = self.case.fresh_inputs(seed=1, seq_len=self.case.seq_len // 2)
        calls = [self.case.run, self.case.run, lambda: self.case.call(*half)]
        return measure.compile_health(llama_layer.compiled_code(self.case), calls)


class LayerMemory(_PeakMemory, _Layer):
    """Peak process RSS during one call, weights and inputs included."""

    version = "1"


class LayerCudaMemory(_PeakCudaMemory, _Layer):
    """Peak CUDA allocated and reserved bytes, and the process's RSS, during one call,
    weights and inputs included."""

    version = "1"


class LayerAccuracy(_Layer):
    """The output on fresh inputs (not the timed ones) against the eager layer of the same
    backend (what compiling changes: the write-up's "max diff") and against the torch layer
    in float64 (what bf16, FP8 and compiling change together)."""

    version = "1"
    unit = "relative"

    def setup(self, *params):
        self._build(*params)
        inputs = self.case.fresh_inputs(seed=1234)
        out = _first(self.case.call(*inputs))
        self.vs_eager = measure.accuracy(out, _first(llama_layer.eager_of(self.case).call(
            *inputs)))
        self.vs_float64 = measure.accuracy(out, _first(llama_layer.float64_reference(
            self.case, inputs)))

    def track_rel_l2_vs_eager(self, *params):
        return self.vs_eager.rel_l2

    def track_max_abs_vs_eager(self, *params):
        return self.vs_eager.max_abs

    track_max_abs_vs_eager.unit = "absolute"

    def track_rel_l2_vs_float64(self, *params):
        return self.vs_float64.rel_l2

    def track_max_abs_vs_float64(self, *params):
        return self.vs_float64.max_abs

    track_max_abs_vs_float64.unit = "absolute"


class LayerGradAccuracy(_Layer):
    """The gradients (input and every weight, together) on fresh inputs against eager's and
    against float64's."""

    version = "1"
    unit = "relative"

    def setup(self, *params):
        if params[3] != "forward-backward":
            raise Unavailable("gradients need pass=forward-backward")
        self._build(*params)
        inputs = self.case.fresh_inputs(seed=1234)
        grads = self.case.call(*inputs)[1:]
        self.vs_eager = measure.accuracy(grads, llama_layer.eager_of(self.case).call(
            *inputs)[1:])
        self.vs_float64 = measure.accuracy(grads, llama_layer.float64_reference(
            self.case, inputs)[1:])

    def track_grad_rel_l2_vs_eager(self, *params):
        return self.vs_eager.rel_l2

    def track_grad_rel_l2_vs_float64(self, *params):
        return self.vs_float64.rel_l2


def _first(output):
    """The layer's output from a call's result (forward+backward returns grads too)."""
    return output[0] if isinstance(output, tuple) else output
