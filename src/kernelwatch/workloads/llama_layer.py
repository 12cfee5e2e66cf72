"""One Llama decoder layer: eager against surgical and whole-layer compilation, forward and
backward, with torch linears or TransformerEngine's fused ones.

The write-up this grew from (surgical RoPE compilation in TransformerEngine layers) compiled
only RoPE and the head reshapes ("surgical"), kept TE's FP8 linears eager, and reported
1.18x / 1.14x / 1.09x on layers shaped like Llama 1B / 3B / 8B, with an unexplained max
difference of 0.58 against eager, no backward pass and one sequence length. This workload
measures every variant on the same layer, both passes, and the error of each against eager
and against float64, so the 0.58 can be pinned on compilation or on FP8.

The layer is Hugging Face's LlamaDecoderLayer in plain PyTorch (`_llama_model.py`), the
transformations applied from outside.

Parameters:
- `backend`: `torch` (nn.Linear in the model dtype) or `te` (TransformerEngine's
  `LayerNormLinear` for norm+QKV, `Linear` for the output projection, `LayerNormMLP` for
  norm+MLP, under FP8 autocast on GPUs of compute capability >= 8.9), where
  `transformer_engine` imports;
- `variant` (how much is compiled, in variants.py's names): `eager`; `surgical`
  (torch.compile of RoPE and the reshapes only, everything else eager); `compile` (the
  whole layer); `compile-reduce-overhead` (the whole layer replayed from CUDA graphs; GPU
  only). Results recorded as `full` and `full-reduce-overhead` read as these (RENAMED);
- `pass`: `forward` (inference: no autograd) or `forward-backward` (the gradients of the
  input and of every weight for a fixed upstream gradient);
- `seq_len`: a parameter so that a compiled layer's behaviour when the length changes shows
  (its recompiles are recorded with a call at half the length).

Weights are random (seeded, normal with HF's initializer range 0.02), or read from a
safetensors file of this layer's tensors named in $KERNELWATCH_LLAMA_LAYER_CHECKPOINT.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kernelwatch import measure, variants
from kernelwatch.errors import KernelwatchError, Unavailable, check_choices
from kernelwatch.workloads import SuitePart
from kernelwatch.workloads._case import Case
from kernelwatch.workloads._llama_model import (
    LlamaLayer,
    TensorOps,
    TeProjections,
    TorchProjections,
    merge_heads,
    release,
    split_heads,
    te_version,
    transformer_engine,
)
from kernelwatch.workloads.rope import RopeShape, cos_sin, rope_rotate_half


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
VARIANTS = ("eager", variants.SURGICAL, *WHOLE_LAYER)
# Old names of values in recorded results: {parameter: {old: new}}. The whole-layer variants
# were `full` and `full-reduce-overhead`, with the same compile modes.
RENAMED = {"variant": {"full": "compile", "full-reduce-overhead": "compile-reduce-overhead"}}
GPU_ONLY = {"compile-reduce-overhead": variants.GPU_ONLY["compile-reduce-overhead"]}
# The surgical variant's compile mode: shape-specialised, as the timed shape is fixed.
SURGICAL_COMPILE = "compile"

PARAMS = {"shape": list(SHAPES), "seq_len": list(SEQ_LENS), "backend": list(BACKENDS),
          "pass": list(PASSES), "variant": list(VARIANTS)}
# `kernelwatch run --quick`: does compiling the tiny layer pay, surgically or whole, forward.
# Libraries whose code a case runs (`kernelwatch run --target DIST=REPO`, `--versions`):
# TransformerEngine's linears are the `te` backend, every strategy.
TARGETS = {"transformer-engine": {"backend": ["te"]}}
QUICK = {"shape": ["tiny"], "seq_len": ["128"], "backend": ["torch"], "pass": ["forward"],
         "variant": ["eager", "surgical", "compile"]}
QUICK_METRICS = ("time",)
QUICK_TRACKS = ("time",)
# Named selections (workloads.SUITE_NAMES). Per commit: the three real layers' forward at
# sequence 2048 on torch's linears, eager against surgical and whole-layer compile, with the
# error against eager; one cold compile. Nightly: TransformerEngine's linears, the backward,
# the compiled share and compile health.
_LAYERS = {"shape": ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"], "seq_len": ["2048"]}
SUITES = {
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
def weight_names(shape: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in TorchProjections(SHAPES[shape]).state_dict().items()}


def _random_weights(shape: LayerShape) -> dict[str, torch.Tensor]:
    proj = TorchProjections(shape)
    g = torch.Generator().manual_seed(SEED)
    out = {}
    for name, t in proj.state_dict().items():
        out[name] = (torch.ones_like(t) if name.endswith("norm.weight")
                     else torch.randn(t.shape, generator=g) * INIT_STD)
    return out


def load_weights(shape: str) -> dict[str, torch.Tensor]:
    """The layer's weights in float32 on the CPU: the checkpoint's if one is named, else
    seeded random ones."""
    path = os.environ.get(CHECKPOINT_ENV)
    if not path:
        return _random_weights(SHAPES[shape])
    if not Path(path).is_file():
        raise KernelwatchError(f"{CHECKPOINT_ENV}={path}: no such file; name a safetensors "
                               "file of one layer's tensors, or unset it for random weights")
    from safetensors.torch import load_file

    tensors = load_file(path)
    for name, want in weight_names(shape).items():
        got = tuple(tensors[name].shape) if name in tensors else None
        if got != want:
            raise KernelwatchError(
                f"{path} does not hold llama_layer {shape}'s weights: {name} is "
                f"{'missing' if got is None else got}, the layer needs {want}")
    return {k: tensors[k].float() for k in weight_names(shape)}


def torch_layer(shape: str, weights: dict[str, torch.Tensor], dtype: torch.dtype,
                device: torch.device) -> LlamaLayer:
    proj = TorchProjections(SHAPES[shape])
    proj.load_state_dict(weights)
    return LlamaLayer(SHAPES[shape], proj).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------- a case


def model_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def rope_tables(shape: LayerShape, seq_len: int, dtype: torch.dtype,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [B, S, D] as LlamaRotaryEmbedding makes them: the RoPE workload's
    rotate-half tables for this layer's attention."""
    attention = RopeShape(batch=shape.batch, q_heads=shape.heads, kv_heads=shape.kv_heads,
                          seq_len=seq_len, head_dim=shape.head_dim,
                          rope_theta=shape.rope_theta)
    return cos_sin(attention, "rotate-half", dtype, device)

def make_inputs(shape: LayerShape, seq_len: int, dtype: torch.dtype, device: torch.device,
                seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden states, cos, sin, upstream gradient) for one call."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(shape.batch, seq_len, shape.hidden, generator=g)
    grad = torch.randn(shape.batch, seq_len, shape.hidden, generator=g)
    cos, sin = rope_tables(shape, seq_len, dtype, device)
    return x.to(device, dtype), cos, sin, grad.to(device, dtype)


# torch.compile of a layer made of TE's LayerNormLinear, Linear and LayerNormMLP under FP8
# autocast fails inside dynamo ("InternalTorchDynamoError: NotImplementedError"), seen with
# TE 2.20.2 and torch 2.11 on an H200; TE's own issues track which modules support
# torch.compile (Linear does; LayerNormLinear and LayerNormMLP not yet). Versions up to this
# one skip the whole-layer variants with that reason instead of failing in setup.
TE_FULL_COMPILE_FAILS_THROUGH = (2, 20, 2)


def require_te_compilable(te_version: str, variant: str) -> None:
    """Unavailable with the reason where `variant` compiles the whole layer and this TE
    release is one whose modules dynamo cannot trace (TE_FULL_COMPILE_FAILS_THROUGH)."""
    if variant in WHOLE_LAYER and release(te_version) <= TE_FULL_COMPILE_FAILS_THROUGH:
        raise Unavailable(
            f"{variant}: torch.compile of TransformerEngine {te_version}'s LayerNormLinear / "
            "LayerNormMLP fails inside dynamo (InternalTorchDynamoError: NotImplementedError, "
            "seen with TE 2.20.2 and torch 2.11); the surgical variant compiles the tensor "
            "ops around them")


def check_available(backend: str, variant: str, device: torch.device) -> None:
    """Unavailable (asv: skipped) with the reason when the combination cannot run here."""
    if device.type != "cuda" and variant in GPU_ONLY:
        raise Unavailable(f"{variant} needs a CUDA GPU: {GPU_ONLY[variant]}")
    if backend == "te":
        if device.type != "cuda":
            raise Unavailable("the te backend needs a CUDA GPU (TransformerEngine's kernels)")
        transformer_engine()
        require_te_compilable(te_version(), variant)


def _labelled(fn: Callable, label: str) -> Callable:
    def run(*args):
        with torch.profiler.record_function(label):
            return fn(*args)

    return run


def tensor_ops(compiled: bool, device: torch.device, label: bool = False) -> TensorOps:
    """The layer's tensor ops: eager, or (surgical) RoPE and the reshapes compiled, each on
    its own as the write-up did; `label` marks each call for the profiler (the share of
    layer time they take)."""
    ops = [split_heads, rope_rotate_half, merge_heads]
    if compiled:
        ops = [variants.apply_compile(SURGICAL_COMPILE, f, device) for f in ops]
    if label:
        ops = [_labelled(f, SURGICAL_LABEL) for f in ops]
    return TensorOps(*ops)


@dataclass
class LayerCase(Case):
    """Everything one benchmark of one (shape, seq_len, backend, pass, variant) needs. A
    call is one pass on (hidden states, cos, sin, upstream gradient)."""

    shape_name: str
    seq_len: int
    backend: str
    pass_: str
    variant: str
    device: torch.device
    layer: LlamaLayer  # the module the variant runs (eager ops or surgical ones)
    fn: Callable  # the layer as the variant calls it (compiled for the whole-layer ones)
    inputs: tuple

    @property
    def shape(self) -> LayerShape:
        return SHAPES[self.shape_name]

    @property
    def input_sets(self) -> list[tuple]:
        return [self.inputs]

    @property
    def device_method(self) -> str:
        return device_time_method(self.backend, self.pass_, self.variant)

    def call(self, x, cos, sin, grad) -> object:
        """One call of the pass: the output, or (output, input grad, weight grads)."""
        if self.pass_ == "forward":
            with torch.no_grad():
                return self.fn(x, cos, sin)
        x = x.detach().requires_grad_(True)
        out = self.fn(x, cos, sin)
        weights = [p for p in self.layer.parameters() if p.requires_grad]
        grads = torch.autograd.grad(out, [x, *weights], grad)
        return out.detach(), *grads

    def fresh_inputs(self, seed: int, seq_len: int | None = None) -> tuple:
        return make_inputs(self.shape, seq_len or self.seq_len, model_dtype(self.device),
                           self.device, seed)


def build_layer(shape: str, backend: str, dtype: torch.dtype, device: torch.device,
                ops: TensorOps) -> LlamaLayer:
    """The layer of `backend` with this shape's weights (load_weights) and `ops`."""
    weights = load_weights(shape)
    if backend == "te":
        layer = LlamaLayer(SHAPES[shape], TeProjections(SHAPES[shape], weights, dtype, device))
    else:
        layer = torch_layer(shape, weights, dtype, device)
    layer.ops = ops
    return layer


def build_case(shape: str, seq_len: str, backend: str, pass_: str, variant: str,
               device: str | torch.device = "cpu", *, label_regions: bool = False,
               seed: int = 0) -> LayerCase:
    """The layer of `backend` with the variant applied (compiles on first call).
    `label_regions`: mark the layer and the surgical region for the profiler."""
    check_choices(PARAMS, {"shape": [shape], "seq_len": [seq_len], "backend": [backend],
                           "pass": [pass_], "variant": [variant]}, where="llama_layer")
    device = torch.device(device)
    check_available(backend, variant, device)
    ops = tensor_ops(variant == variants.SURGICAL, device, label_regions)
    layer = build_layer(shape, backend, model_dtype(device), device, ops)
    fn: Callable = layer
    if variant in WHOLE_LAYER:
        fn = variants.apply_compile(variant, layer, device)
    if label_regions:
        fn = _labelled(fn, LAYER_LABEL)
    inputs = make_inputs(SHAPES[shape], int(seq_len), model_dtype(device), device, seed)
    return LayerCase(shape, int(seq_len), backend, pass_, variant, device, layer, fn, inputs)


def eager_of(case: LayerCase) -> LayerCase:
    """The eager layer of the same backend and pass, weights and dtype: what each variant's
    error "vs eager" is measured against."""
    return build_case(case.shape_name, str(case.seq_len), case.backend, case.pass_, "eager",
                      case.device)


def float64_reference(case: LayerCase, inputs: tuple) -> object:
    """The pass on the torch layer in float64 (same weights, inputs upcast): the reference
    for "error vs float64". For the te backend too: TE has no float64, and the question is
    how far FP8 and bf16 land from exact arithmetic."""
    ref = build_case(case.shape_name, str(case.seq_len), "torch", case.pass_, "eager",
                     case.device)
    ref.layer.to(torch.float64)
    return ref.call(*(t.detach().to(torch.float64) for t in inputs))


def device_time_uses_graph(backend: str, pass_: str, variant: str) -> bool:
    """Whether device time replays the calls from a CUDA graph: the torch backend's forward
    only. Not reduce-overhead (it replays its own graphs, which cannot nest in a capture),
    not autograd (the backward's capture is not known to be safe for every variant), not
    TE (FP8 autocast keeps host-side scaling state): those are the profiler's kernel time of
    plain calls, which leaves out the GPU's waits for the host."""
    return backend == "torch" and pass_ == "forward" and variant != "compile-reduce-overhead"


def device_time_method(backend: str, pass_: str, variant: str) -> str:
    """How a GPU's device time of this case is read (measure.time_device)."""
    return (measure.CUDA_GRAPH if device_time_uses_graph(backend, pass_, variant)
            else measure.PROFILER_KERNELS)


def device_method_for(params: dict) -> str:
    """device_time_method for a benchmark's params dict (used by the report)."""
    return device_time_method(params["backend"], params["pass"], params["variant"])


def prime_compile(shape: str, seq_len: str, backend: str, pass_: str, variant: str,
                  device_type: str) -> None:
    """Compile and run once (in a child process) to fill the on-disk compile cache."""
    case = build_case(shape, seq_len, backend, pass_, variant, device_type)
    case.run()
    measure.synchronize(case.device)


def compiled_code(case: LayerCase) -> object:
    """The code object dynamo caches entries on: the layer's forward for whole-layer ones,
    RoPE's for surgical (the compiled function that sees the sequence length)."""
    if case.variant == "surgical":
        return rope_rotate_half.__code__
    return LlamaLayer.forward.__code__


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


def parameter_count(shape: str) -> int:
    return sum(t.numel() for t in _random_weights(SHAPES[shape]).values())
