"""The Llama decoder layer's declaration: eager against surgical and whole-layer
compilation, forward and backward, with torch linears or TransformerEngine's fused ones (the
layer and the variants: case.py, model.py).

The write-up this grew from (surgical RoPE compilation in TransformerEngine layers) compiled
only RoPE and the head reshapes ("surgical"), kept TE's FP8 linears eager, and reported
1.18x / 1.14x / 1.09x on layers shaped like Llama 1B / 3B / 8B, with an unexplained max
difference of 0.58 against eager, no backward pass and one sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwatch.time_methods import CUDA_GRAPH, PROFILER_KERNELS
from kernelwatch.workloads import variants as compile_modes
from kernelwatch.workloads.declaration import (
    SuitePart,
    Variant,
    Workload,
    compile_variant,
    variant_table,
)


@dataclass(frozen=True)
class LayerShape:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    rope_theta: float
    batch: int  # the write-up's batch for this model
    rms_eps: float = 1e-5

    @property
    def qkv_width(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim


# Per-layer dimensions from each model's config.json; batch as in the write-up's production
# runs (1B batch 4, 3B batch 2, 8B batch 1). `tiny` is sized for CPU tests.
SHAPES: dict[str, LayerShape] = {
    "tiny": LayerShape(hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=176,
                       rope_theta=1e4, batch=1),
    "llama-3.2-1b": LayerShape(2048, 32, 8, 64, 8192, 500000.0, 4),
    "llama-3.2-3b": LayerShape(3072, 24, 8, 128, 8192, 500000.0, 2),
    "llama-3.1-8b": LayerShape(4096, 32, 8, 128, 14336, 500000.0, 1),
}
SEQ_LENS = ("128", "512", "2048")
BACKENDS = ("torch", "te")
PASSES = ("forward", "forward-backward")
# The variants that compile the whole layer, each named by its compile mode (variants.py).
WHOLE_LAYER = ("compile", "compile-reduce-overhead")
VARIANTS = variant_table(
    Variant("eager"),
    # torch.compile of RoPE and the head reshapes only, everything else eager.
    Variant(compile_modes.SURGICAL),
    *(compile_variant(mode) for mode in WHOLE_LAYER),
)
# Old names of values in recorded results: {parameter: {old: new}}. The whole-layer variants
# were `full` and `full-reduce-overhead`, with the same compile modes.
RENAMED = {"variant": {"full": "compile", "full-reduce-overhead": "compile-reduce-overhead"}}
# The surgical variant's compile mode: shape-specialised, as the timed shape is fixed.
SURGICAL_COMPILE = "compile"

PARAMS = {"shape": list(SHAPES), "seq_len": list(SEQ_LENS), "backend": list(BACKENDS),
          "pass": list(PASSES), "variant": list(VARIANTS)}
# Libraries whose code a case runs (`kernelwatch run --target DIST=REPO`, `--versions`):
# TransformerEngine's linears are the `te` backend, every strategy.
TARGETS = {"transformer-engine": {"backend": ["te"]}}
_LAYERS = {"shape": ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"], "seq_len": ["2048"]}
SUITES = {
    # `kernelwatch run --quick`: does compiling the tiny layer pay, surgically or whole,
    # forward.
    "quick": [SuitePart({"shape": ["tiny"], "seq_len": ["128"], "backend": ["torch"],
                         "pass": ["forward"], "variant": ["eager", "surgical", "compile"]},
                        ("time",), ("time",))],
    # Per commit: the three real layers' forward at sequence 2048 on torch's linears, eager
    # against surgical and whole-layer compile, with the error against eager; one cold
    # compile. Nightly: TransformerEngine's linears, the backward, the compiled share and
    # compile health.
    "gpu-commit": [
        SuitePart({**_LAYERS, "backend": ["torch"], "pass": ["forward"],
                   "variant": ["eager", "surgical", "compile"]},
                  ("time", "accuracy"), ("time", "caller_time", "rel_l2_vs_eager")),
        SuitePart({"shape": ["llama-3.2-1b"], "seq_len": ["2048"], "backend": ["torch"],
                   "pass": ["forward"], "variant": ["compile"]}, ("compile",),
                  ("cold_compile",)),
    ],
    "gpu-nightly": [
        SuitePart(_LAYERS, ("time", "accuracy", "compiled-share")),
        SuitePart({**_LAYERS, "variant": ["surgical", "compile"]}, ("compile",)),
    ],
}
# Metric family -> asv class in benchmarks/llama_layer.py.
BENCHMARKS = {"time": "LayerTime", "compiled-share": "LayerCompiledShare",
              "compile": "LayerCompile", "memory": "LayerMemory",
              "cuda-memory": "LayerCudaMemory", "accuracy": "LayerAccuracy",
              "grad-accuracy": "LayerGradAccuracy", "device-check": "LayerDeviceCheck",
              "kernels": "LayerKernels"}
CHECKPOINT_ENV = "KERNELWATCH_LLAMA_LAYER_CHECKPOINT"
SETTINGS = {"checkpoint": CHECKPOINT_ENV}

SEED = 0
INIT_STD = 0.02  # HF Llama's initializer_range
# The write-up's figures (H100 PCIe, torch 2.8 NGC, TE FP8 linears, surgical, forward):
# speedup over eager and its "tensor ops %" (the share of layer time surgical compiles).
WRITEUP = {"llama-3.2-1b": (1.184, 0.142), "llama-3.2-3b": (1.145, 0.100),
           "llama-3.1-8b": (1.094, 0.077)}
# The quality gate: a variant's output against eager's, relative L2. A correct compile of
# a bf16 layer reorders sums and fuses roundings: about 1e-3 to 1e-2; fp32 stays near 1e-6.
REL_L2_VS_EAGER_GATE = 0.02
# TE's FP8 linears: eager's own error against float64 is 0.04-0.08 (H200, 1B-8B), and a
# compile that changes a bf16 input by one rounding moves values across FP8's coarse steps
# (3 mantissa bits), so two correct FP8 layers differ by up to about that error again
# (surgical vs eager measured 0.016-0.10, their errors vs float64 equal): twice FP8's error.
REL_L2_VS_EAGER_GATE_FP8 = 0.15
# Labels of the surgical region for the profiler (measure.region_share).
LAYER_LABEL = "kernelwatch.layer"
SURGICAL_LABEL = "kernelwatch.surgical_region"


def quality_gate(track: str, params: dict, value: float) -> str | None:
    """The report's gate: the output of a variant within 2% (relative L2) of eager's; 15%
    for TE's FP8 linears (REL_L2_VS_EAGER_GATE_FP8)."""
    gate = REL_L2_VS_EAGER_GATE_FP8 if params.get("backend") == "te" else REL_L2_VS_EAGER_GATE
    if track == "track_rel_l2_vs_eager" and not value <= gate:
        return f"rel. L2 vs eager {value:.2g} > {gate:g}"
    return None


# ----------------------------------------------------------------------------- the layer


# Tensor names of a layer's weights: the torch projections' state_dict keys. A checkpoint
# holds these (a converted HF layer: qkv = cat(q, k, v), gate_up = cat(gate, up)).


def device_time_uses_graph(backend: str, pass_: str, variant: str) -> bool:
    """Whether device time replays the calls from a CUDA graph: the torch backend's forward
    only. Not reduce-overhead (it replays its own graphs, which cannot nest in a capture),
    not autograd (the backward's capture is not known to be safe for every variant), not
    TE (FP8 autocast keeps host-side scaling state): those are the profiler's kernel time of
    plain calls, which leaves out the GPU's waits for the host."""
    return backend == "torch" and pass_ == "forward" and variant != "compile-reduce-overhead"


def device_time_method(backend: str, pass_: str, variant: str) -> str:
    """How a GPU's device time of this case is read (measure.time_device)."""
    return (CUDA_GRAPH if device_time_uses_graph(backend, pass_, variant)
            else PROFILER_KERNELS)


def device_method_for(params: dict) -> str:
    """device_time_method for a benchmark's params dict (used by the report)."""
    return device_time_method(params["backend"], params["pass"], params["variant"])


def flops_for(params: dict) -> int:
    """Matmul FLOPs of one call: the projections (2 per multiply-add) plus causal attention
    (QK^T and PV over the lower triangle); forward+backward counts three times forward."""
    s, n = SHAPES[params["shape"]], int(params["seq_len"])
    tokens = s.batch * n
    linear = 2 * tokens * (s.hidden * s.qkv_width + s.heads * s.head_dim * s.hidden
                           + s.hidden * 2 * s.intermediate + s.intermediate * s.hidden)
    attention = 2 * 2 * s.batch * s.heads * s.head_dim * n * (n + 1) // 2
    forward = linear + attention
    return forward * (3 if params["pass"] == "forward-backward" else 1)


SPEC = Workload(
    name="llama_layer", params=PARAMS, metrics=BENCHMARKS, variants=VARIANTS, suites=SUITES,
    settings=SETTINGS, targets=TARGETS, renamed=RENAMED, flops_for=flops_for,
    quality_gate=quality_gate, device_method_for=device_method_for)
