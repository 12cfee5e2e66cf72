"""The Llama decoder layer's cases (the declaration is spec.py). This workload measures
every variant on the same layer, both passes, and the error of each against eager and
against float64, so the write-up's 0.58 can be pinned on compilation or on FP8.

The layer is Hugging Face's LlamaDecoderLayer in plain PyTorch (`model.py`), the
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

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kernelwatch import measure
from kernelwatch.errors import KernelwatchError, Unavailable, check_choices
from kernelwatch.workloads import variants
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.llama_layer.model import (
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
from kernelwatch.workloads.llama_layer.spec import (
    CHECKPOINT_ENV,
    INIT_STD,
    LAYER_LABEL,
    PARAMS,
    SEED,
    SHAPES,
    SURGICAL_COMPILE,
    SURGICAL_LABEL,
    VARIANTS,
    WHOLE_LAYER,
    LayerShape,
    device_time_method,
)
from kernelwatch.workloads.llama_layer.spec import (
    SPEC as SPEC,
)
from kernelwatch.workloads.llama_layer.spec import (
    WRITEUP as WRITEUP,
)
from kernelwatch.workloads.rope.case import RopeShape, cos_sin, rope_rotate_half


def weight_names(shape: str) -> dict[str, tuple[int, ...]]:
    """The layer's tensors and their shapes, in the order the random weights are drawn."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        proj = TorchProjections(SHAPES[shape])
    return {k: tuple(v.shape) for k, v in proj.state_dict().items()}


@functools.lru_cache(maxsize=1)
def _random_weights_of(shape_name: str) -> dict[str, torch.Tensor]:
    # Kept for the process: an accuracy benchmark builds its variant, eager and float64
    # layers from one set (the 8B's 218M normals took ~5 s each time on the CPU).
    g = torch.Generator().manual_seed(SEED)
    return {name: (torch.ones(size) if name.endswith("norm.weight")
                   else torch.randn(size, generator=g) * INIT_STD)
            for name, size in weight_names(shape_name).items()}


def _random_weights(shape_name: str) -> dict[str, torch.Tensor]:
    """The seeded random weights (callers copy them into their modules, never write them)."""
    return dict(_random_weights_of(shape_name))


def load_weights(shape: str) -> dict[str, torch.Tensor]:
    """The layer's weights in float32 on the CPU: the checkpoint's if one is named, else
    seeded random ones."""
    path = os.environ.get(CHECKPOINT_ENV)
    if not path:
        return _random_weights(shape)
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
    with torch.device("meta"):  # every parameter is loaded below: skip nn.Linear's init
        proj = TorchProjections(SHAPES[shape])
    proj = proj.to_empty(device="cpu")
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
    VARIANTS[variant].check(device.type)
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


def parameter_count(shape: str) -> int:
    return sum(math.prod(size) for size in weight_names(shape).values())
