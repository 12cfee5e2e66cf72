"""RoPE's cases: the eager forms, the float64 reference, the library variants, inputs, and
`build_case` (the declaration is spec.py). Variant `triton` is the project's reference kernel
(kernels.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernelwatch import measure
from kernelwatch.errors import Unavailable, check_choices
from kernelwatch.workloads import variants
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.rope.kernels import rope_triton as rope_triton
from kernelwatch.workloads.rope.kernels import triton_variant
from kernelwatch.workloads.rope.spec import (
    DEVICE_METHOD,
    DTYPES_BY_DEVICE,
    PARAMS,
    SHAPES,
    VARIANTS,
    RopeShape,
    bytes_moved,
)
from kernelwatch.workloads.rope.spec import (
    FORMS as FORMS,
)
from kernelwatch.workloads.rope.spec import (
    REL_L2_TOLERANCE as REL_L2_TOLERANCE,
)
from kernelwatch.workloads.rope.spec import (
    SPEC as SPEC,
)
from kernelwatch.workloads.rope.upstream import te_apply_rotary_pos_emb


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_rotate_half(q, k, cos, sin):
    """HF Llama form: cos/sin are [B, S, D], broadcast over heads."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    pairs = x.unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def rope_interleaved(q, k, cos, sin):
    """Interleaved-pairs form: cos/sin are [B, S, D/2], broadcast over heads."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return _rotate_pairs(q, cos, sin), _rotate_pairs(k, cos, sin)


EAGER = {"rotate-half": rope_rotate_half, "interleaved": rope_interleaved}


def angles(shape: RopeShape, device: torch.device | str = "cpu") -> torch.Tensor:
    """Rotation angles [S, D/2] in float64, as LlamaRotaryEmbedding computes them."""
    d = shape.head_dim
    inv_freq = 1.0 / shape.rope_theta ** (
        torch.arange(0, d, 2, dtype=torch.float64, device=device) / d
    )
    positions = torch.arange(shape.seq_len, dtype=torch.float64, device=device)
    return torch.outer(positions, inv_freq)


def cos_sin(shape: RopeShape, form: str, dtype: torch.dtype, device) -> tuple:
    theta = angles(shape, device)
    if form == "rotate-half":
        theta = torch.cat((theta, theta), dim=-1)
    theta = theta.expand(shape.batch, *theta.shape)
    return theta.cos().to(dtype).contiguous(), theta.sin().to(dtype).contiguous()


def make_inputs(shape: RopeShape, form: str, dtype: torch.dtype, device, generator) -> tuple:
    s = shape
    q = torch.randn(s.batch, s.q_heads, s.seq_len, s.head_dim, generator=generator,
                    device=device, dtype=torch.float32).to(dtype)
    k = torch.randn(s.batch, s.kv_heads, s.seq_len, s.head_dim, generator=generator,
                    device=device, dtype=torch.float32).to(dtype)
    cos, sin = cos_sin(shape, form, dtype, device)
    return q, k, cos, sin


def reference(form: str, inputs: tuple) -> tuple:
    """The float64 reference: the eager form on inputs upcast to float64."""
    return EAGER[form](*(t.to(torch.float64) for t in inputs))


def _te_fused(form: str, shape: RopeShape, device: torch.device) -> Callable:
    interleaved = form == "interleaved"
    apply_rotary_pos_emb = te_apply_rotary_pos_emb(interleaved)
    # TE takes angles [S, 1, 1, D] and a tensor laid out "bshd"; q/k are [B, H, S, D], so
    # transposed views are passed (the fused kernel reads strides) and the result is viewed
    # back. The angles are built once here, as a model would cache them.
    theta = angles(shape, device).float()
    if form == "rotate-half":
        theta = torch.cat((theta, theta), dim=-1)
    else:
        theta = theta.repeat_interleave(2, dim=-1)
    freqs = theta[:, None, None, :].contiguous()

    def te_rope(q, k, cos, sin):
        out = []
        for t in (q, k):
            y = apply_rotary_pos_emb(t.transpose(1, 2), freqs, tensor_format="bshd",
                                     fused=True)
            out.append(y.transpose(1, 2))
        return tuple(out)

    return te_rope


def _liger(form: str, device: torch.device) -> Callable:
    if form != "rotate-half":
        raise Unavailable("liger implements the rotate-half form only (HF Llama's layout)")
    try:
        from liger_kernel.ops.rope import LigerRopeFunction
    except ImportError as exc:
        raise Unavailable(f"liger needs liger-kernel, which does not import here ({exc}); "
                          "pip install liger-kernel") from exc

    # Liger rotates q and k in place and returns them: one read and one write of each, the
    # floor's traffic. Repeated timed calls keep rotating the same buffers, which costs the
    # same; the accuracy benchmark computes its reference before the call.
    def liger_rope(q, k, cos, sin):
        return LigerRopeFunction.apply(q, k, cos, sin)

    return liger_rope


@dataclass
class RopeCase(Case):
    """Everything one benchmark of one (shape, form, dtype, variant) needs. A call is
    `fn(q, k, cos, sin)`; the input sets are the rotated ones."""

    shape_name: str
    form: str
    dtype: str
    variant: str
    device: torch.device
    fn: Callable
    eager_fn: Callable
    input_sets: list[tuple]
    bytes_moved: int

    device_method = DEVICE_METHOD

    @property
    def shape(self) -> RopeShape:
        return SHAPES[self.shape_name]

    def call(self, q, k, cos, sin) -> tuple:
        return self.fn(q, k, cos, sin)

    def fresh_inputs(self, seed: int) -> tuple:
        g = torch.Generator(device=self.device).manual_seed(seed)
        return make_inputs(self.shape, self.form, getattr(torch, self.dtype), self.device, g)


def build_case(shape: str, form: str, dtype: str, variant: str,
               device: str | torch.device = "cpu", *, seed: int = 0,
               rotate_bytes: int = 0) -> RopeCase:
    """Build inputs and the variant's function. `rotate_bytes`: make enough input sets that
    together they exceed this many bytes (pass a multiple of the L2 size on a GPU so each
    call reads from device memory, not cache)."""
    check_choices(PARAMS, {"shape": [shape], "form": [form], "dtype": [dtype],
                           "variant": [variant]}, where="rope")
    device = torch.device(device)
    VARIANTS[variant].check(device.type)
    if dtype not in DTYPES_BY_DEVICE[device.type]:
        raise Unavailable(f"rope runs {', '.join(DTYPES_BY_DEVICE[device.type])} on "
                          f"{device.type}; {dtype} is not measured there")
    eager_fn = EAGER[form]
    if variant == "eager":
        fn = eager_fn
    elif variant == "te-fused":
        fn = _te_fused(form, SHAPES[shape], device)
    elif variant == "liger":
        fn = _liger(form, device)
    elif variant == "triton":
        fn = triton_variant(form, device)
    else:
        fn = variants.apply_compile(variant, eager_fn, device)
    nbytes = bytes_moved(SHAPES[shape], form, dtype)
    n_sets = max(1, -(-rotate_bytes // nbytes))
    g = torch.Generator(device=device).manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    sets = [make_inputs(SHAPES[shape], form, torch_dtype, device, g) for _ in range(n_sets)]
    return RopeCase(shape, form, dtype, variant, device, fn, eager_fn, sets, nbytes)


def other_seq_len_inputs(case: RopeCase) -> tuple:
    """Inputs at half the sequence length: a second shape, to show whether a variant
    recompiles when the length changes (dynamo's automatic-dynamic behaviour)."""
    s = case.shape
    half = RopeShape(s.batch, s.q_heads, s.kv_heads, s.seq_len // 2, s.head_dim, s.rope_theta)
    g = torch.Generator(device=case.device).manual_seed(1)
    return make_inputs(half, case.form, getattr(torch, case.dtype), case.device, g)


def prime_compile(shape: str, form: str, dtype: str, variant: str, device: str) -> None:
    """Compile and run once (in a child process) to fill the on-disk compile cache."""
    case = build_case(shape, form, dtype, variant, device)
    case.run()
    measure.synchronize(case.device)
