"""Rotary position embedding (RoPE) applied to the queries and keys of one attention layer.

Two forms:
- `rotate-half`: Hugging Face Llama's `apply_rotary_pos_emb`, `x*cos + rotate_half(x)*sin`
  with cos/sin of shape [B, S, D] from `LlamaRotaryEmbedding` (the two halves of the head
  dimension are rotated together).
- `interleaved`: the original Meta/GPT-J form, rotating adjacent pairs (x[2i], x[2i+1]),
  cos/sin of shape [B, S, D/2].

Variant `triton` is the reference kernel of this project: one Triton launch for q and k
together, each program reading the cos/sin rows of its positions once and applying them to
every head of q and k there, in fp32 with one rounding per output. It is the yardstick for
how close compile gets to the floor.

The minimal traffic is one read and one write of q and k plus one read of cos and sin, so
the floor is memory bandwidth: `bytes_moved / copy bandwidth`. FLOPs are ~3 per element and
irrelevant to the floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernelwatch import measure, variants
from kernelwatch.errors import Unavailable, check_choices
from kernelwatch.workloads._case import Case

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the `triton` variant is skipped with the reason
    triton = None


@dataclass(frozen=True)
class RopeShape:
    batch: int
    q_heads: int
    kv_heads: int
    seq_len: int
    head_dim: int
    rope_theta: float


# Attention of the real models (config.json of each); batch and sequence as in the RoPE
# write-up's production runs (Llama-1B batch 4, 3B batch 2, 8B batch 1, sequence 2048).
SHAPES: dict[str, RopeShape] = {
    "tiny": RopeShape(batch=1, q_heads=4, kv_heads=2, seq_len=128, head_dim=64, rope_theta=1e4),
    "llama-3.2-1b": RopeShape(4, 32, 8, 2048, 64, 500000.0),
    "llama-3.2-3b": RopeShape(2, 24, 8, 2048, 128, 500000.0),
    "llama-3.1-8b": RopeShape(1, 32, 8, 2048, 128, 500000.0),
}
FORMS = ("rotate-half", "interleaved")
DTYPES = ("float32", "bfloat16", "float16")
# fp32 on the CPU; the half types on the GPU (a bf16 CPU RoPE measures nothing users run).
DTYPES_BY_DEVICE = {"cpu": ("float32",), "cuda": ("bfloat16", "float16")}
COMPILED = ("compile", "compile-dynamic", "compile-max-autotune")  # modes of variants.py
VARIANTS = ("eager", *COMPILED, "te-fused", "liger", "triton")

# asv parameters, in order: benchmarks/rope.py declares them from here and the CLI selects by name.
PARAMS = {"shape": list(SHAPES), "form": list(FORMS), "dtype": list(DTYPES),
          "variant": list(VARIANTS)}
# `kernelwatch run --quick`: the CPU-sized case, and the metrics that answer "is it right, is
# it faster", plus one cold compile and the recompile count of the static variant.
QUICK = {"shape": ["tiny"], "form": ["rotate-half"], "dtype": ["float32"],
         "variant": ["eager", "compile", "compile-dynamic"]}
QUICK_COMPILE_VARIANT = "compile"
# On the CPU the caller's time is the device time: the quick run records it once; and the
# relative error is the gated one (each track is a process: seconds of make demo).
QUICK_TRACKS = ("time", "rel_l2_error")
# Metric family -> asv class in benchmarks/rope.py (`kernelwatch run --metric FAMILY`).
BENCHMARKS = {"time": "RopeTime", "compile": "RopeCompile", "memory": "RopeMemory",
              "cuda-memory": "RopeCudaMemory", "accuracy": "RopeAccuracy",
              "device-check": "RopeDeviceCheck"}
# Every variant's calls are captured in a CUDA graph and replayed for device time.
DEVICE_METHOD = measure.CUDA_GRAPH

# Relative L2 error against float64 that a correct RoPE stays under, per dtype: fp32 lands
# near 1e-7; half types round each output once (2^-8 / 2^-11 relative) and eager rounds
# each intermediate too, which stays within a few units of that.
REL_L2_TOLERANCE = {"float32": 1e-5, "bfloat16": 1.5e-2, "float16": 2e-3}


def quality_gate(track: str, params: dict, value: float) -> str | None:
    """The report's gate: relative L2 error against float64 within the dtype's tolerance."""
    tolerance = REL_L2_TOLERANCE.get(params.get("dtype", ""))
    if track == "track_rel_l2_error" and tolerance is not None and value > tolerance:
        return f"rel. L2 error {value:.2g} > {tolerance:g}"
    return None


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


def bytes_moved(shape: RopeShape, form: str, dtype: str) -> int:
    """The fewest bytes any implementation must move: read+write q and k, read cos and sin."""
    itemsize = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    s = shape
    qk = s.batch * (s.q_heads + s.kv_heads) * s.seq_len * s.head_dim
    table_width = s.head_dim if form == "rotate-half" else s.head_dim // 2
    tables = 2 * s.batch * s.seq_len * table_width
    return (2 * qk + tables) * itemsize


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
    if device.type != "cuda":
        raise Unavailable("te-fused needs a CUDA GPU (TransformerEngine's fused RoPE kernel)")
    try:
        from transformer_engine.pytorch.attention.rope import apply_rotary_pos_emb
    except ImportError as exc:
        raise Unavailable(
            f"te-fused needs transformer_engine, which does not import here ({exc}); "
            "install it with `pip install kernelwatch[te]` on a machine with nvcc and cuDNN"
        ) from exc
    # TE takes angles [S, 1, 1, D] and a tensor laid out "bshd"; q/k are [B, H, S, D], so
    # transposed views are passed (the fused kernel reads strides) and the result is viewed
    # back. The angles are built once here, as a model would cache them.
    theta = angles(shape, device).float()
    if form == "rotate-half":
        theta = torch.cat((theta, theta), dim=-1)
    else:
        theta = theta.repeat_interleave(2, dim=-1)
    freqs = theta[:, None, None, :].contiguous()
    interleaved = form == "interleaved"

    def te_rope(q, k, cos, sin):
        out = []
        for t in (q, k):
            y = apply_rotary_pos_emb(t.transpose(1, 2), freqs, tensor_format="bshd",
                                     interleaved=interleaved, fused=True)
            out.append(y.transpose(1, 2))
        return tuple(out)

    return te_rope


def _liger(form: str, device: torch.device) -> Callable:
    if device.type != "cuda":
        raise Unavailable("liger needs a CUDA GPU (Liger Kernel's RoPE is a Triton kernel)")
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


# ----------------------------------------------------------------------------- Triton

if triton is not None:

    @triton.jit
    def _rope_heads(x_ptr, out_ptr, cos1, sin1, cos2, sin2, b, s_offs, s_mask, d_offs, d_mask,
                    sxb, sxh, sxs, sob, soh, sos, HEADS: tl.constexpr, HB: tl.constexpr,
                    HALF: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                    INTERLEAVED: tl.constexpr):
        """Rotate HEADS heads of one tensor at the program's positions, HB heads a step.
        Rotate-half: d_offs index a half row (x1 at d, x2 at d + HALF); interleaved: whole
        rows are loaded and stored contiguously and split into the pairs (x[2p], x[2p+1])
        in registers (strided loads of the even and odd elements ran at 6% of the copy
        bandwidth)."""
        h_offs = tl.arange(0, HB)
        for h0 in tl.static_range(0, HEADS, HB):
            h = h0 + h_offs
            rows = (h < HEADS)[:, None, None] & s_mask[None, :, None]
            x_row = (x_ptr + b * sxb + h[:, None, None] * sxh + s_offs[None, :, None] * sxs)
            o_row = (out_ptr + b * sob + h[:, None, None] * soh + s_offs[None, :, None] * sos)
            if INTERLEAVED:
                d2 = tl.arange(0, 2 * BLOCK_D)[None, None, :]
                mask = rows & (d2 < 2 * HALF)
                x = tl.load(x_row + d2, mask=mask).to(tl.float32)
                even, odd = tl.split(tl.reshape(x, (HB, BLOCK_S, BLOCK_D, 2)))
                y = tl.join(even * cos1 - odd * sin1, even * sin1 + odd * cos1)
                tl.store(o_row + d2, tl.reshape(y, (HB, BLOCK_S, 2 * BLOCK_D)).to(
                    out_ptr.dtype.element_ty), mask=mask)
            else:
                d = d_offs[None, None, :]
                mask = rows & d_mask[None, None, :]
                x1 = tl.load(x_row + d, mask=mask).to(tl.float32)
                x2 = tl.load(x_row + d + HALF, mask=mask).to(tl.float32)
                tl.store(o_row + d, (x1 * cos1 - x2 * sin1).to(out_ptr.dtype.element_ty),
                         mask=mask)
                tl.store(o_row + d + HALF, (x2 * cos2 + x1 * sin2).to(out_ptr.dtype.element_ty),
                         mask=mask)

    @triton.jit
    def _rope_qk_kernel(q_ptr, k_ptr, qo_ptr, ko_ptr, cos_ptr, sin_ptr, S,
                        sqb, sqh, sqs, skb, skh, sks, sqob, sqoh, sqos, skob, skoh, skos,
                        scb, scs, Q_HEADS: tl.constexpr, K_HEADS: tl.constexpr,
                        HALF: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                        HB_Q: tl.constexpr, HB_K: tl.constexpr, INTERLEAVED: tl.constexpr):
        """One program: BLOCK_S positions of one batch row, every head of q and of k. The
        cos/sin rows of those positions are read once, before the heads."""
        b = tl.program_id(1)
        s_offs = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
        s_mask = s_offs < S
        d_offs = tl.arange(0, BLOCK_D)
        d_mask = d_offs < HALF
        t_mask = s_mask[:, None] & d_mask[None, :]
        t_row = b * scb + s_offs[:, None] * scs + d_offs[None, :]
        cos1 = tl.load(cos_ptr + t_row, mask=t_mask).to(tl.float32)[None, :, :]
        sin1 = tl.load(sin_ptr + t_row, mask=t_mask).to(tl.float32)[None, :, :]
        if INTERLEAVED:
            cos2, sin2 = cos1, sin1
        else:
            # HF's tables hold both halves; each is read, so any table gives HF's result.
            cos2 = tl.load(cos_ptr + t_row + HALF, mask=t_mask).to(tl.float32)[None, :, :]
            sin2 = tl.load(sin_ptr + t_row + HALF, mask=t_mask).to(tl.float32)[None, :, :]
        _rope_heads(q_ptr, qo_ptr, cos1, sin1, cos2, sin2, b, s_offs, s_mask, d_offs, d_mask,
                    sqb, sqh, sqs, sqob, sqoh, sqos, Q_HEADS, HB_Q, HALF, BLOCK_S, BLOCK_D,
                    INTERLEAVED)
        _rope_heads(k_ptr, ko_ptr, cos1, sin1, cos2, sin2, b, s_offs, s_mask, d_offs, d_mask,
                    skb, skh, sks, skob, skoh, skos, K_HEADS, HB_K, HALF, BLOCK_S, BLOCK_D,
                    INTERLEAVED)


# Elements of x a program step holds (HB heads x BLOCK_S positions x a half row), its warps,
# and the programs per SM the positions per program are cut down to. Picked on the H200 by
# scripts/rope_triton_tune.py (bf16, the three Llama shapes): 8192 / 8 / 8 was within 3% of
# the best configuration tried on every shape and form; 2048 / 4 / 4 left the 8B rotate-half
# shape at 58% of the copy bandwidth (one batch row: too few loads in flight per SM).
TRITON_STEP_ELEMENTS = 8192
TRITON_NUM_WARPS = 8
TRITON_PROGRAMS_PER_SM = 8


def _triton_config(batch: int, seq_len: int, half: int) -> tuple[int, int, int]:
    """(BLOCK_S, BLOCK_D, HB): positions per program, the padded half row, heads a step.
    Positions per program shrink until there are TRITON_PROGRAMS_PER_SM programs per SM
    (132 SMs on an H100/H200): the 8B shape has one batch row of 2048 positions."""
    block_d = triton.next_power_of_2(half)
    block_s = 16
    while block_s > 1 and batch * triton.cdiv(seq_len, block_s) < TRITON_PROGRAMS_PER_SM * 132:
        block_s //= 2
    hb = triton.next_power_of_2(max(1, TRITON_STEP_ELEMENTS // (block_s * block_d)))
    return block_s, block_d, hb


def rope_triton(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
                interleaved: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE of q [B, H, S, D] and k [B, KV, S, D] in one launch; cos/sin [B, S, D] for
    rotate-half, [B, S, D/2] for interleaved. Any strides except a unit last one; new
    outputs of q's and k's dtype."""
    b, hq, s, d = q.shape
    hk = k.shape[1]
    half = d // 2
    for t in (q, k, cos, sin):
        if t.stride(-1) != 1:
            raise ValueError("rope_triton needs the last dimension contiguous")
    if cos.stride() != sin.stride() or cos.shape[-1] != (half if interleaved else d):
        raise ValueError("cos and sin must share one layout of the form's table width")
    qo, ko = torch.empty_like(q), torch.empty_like(k)
    block_s, block_d, hb = _triton_config(b, s, half)
    grid = (triton.cdiv(s, block_s), b)
    _rope_qk_kernel[grid](
        q, k, qo, ko, cos, sin, s,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        qo.stride(0), qo.stride(1), qo.stride(2), ko.stride(0), ko.stride(1), ko.stride(2),
        cos.stride(0), cos.stride(1), Q_HEADS=hq, K_HEADS=hk, HALF=half, BLOCK_S=block_s,
        BLOCK_D=block_d, HB_Q=min(hb, triton.next_power_of_2(hq)),
        HB_K=min(hb, triton.next_power_of_2(hk)), INTERLEAVED=interleaved,
        num_warps=TRITON_NUM_WARPS)
    return qo, ko


def _triton(form: str, device: torch.device) -> Callable:
    if device.type != "cuda":
        raise Unavailable("triton needs a CUDA GPU (the project's reference RoPE kernel is "
                          "a Triton kernel)")
    if triton is None:
        raise Unavailable("triton is not installed (it comes with CUDA builds of torch)")
    interleaved = form == "interleaved"

    def triton_rope(q, k, cos, sin):
        return rope_triton(q, k, cos, sin, interleaved=interleaved)

    return triton_rope


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
        fn = _triton(form, device)
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


def device_method_for(params: dict) -> str:
    """How a GPU's device time of a RoPE case is read (the report's "device clock")."""
    return DEVICE_METHOD


def bytes_for(params: dict) -> int:
    """bytes_moved for a benchmark's params dict (used by the report)."""
    return bytes_moved(SHAPES[params["shape"]], params["form"], params["dtype"])
