"""Rotary position embedding (RoPE) applied to the queries and keys of one attention layer.

Two forms:
- `rotate-half`: Hugging Face Llama's `apply_rotary_pos_emb`, `x*cos + rotate_half(x)*sin`
  with cos/sin of shape [B, S, D] from `LlamaRotaryEmbedding` (the two halves of the head
  dimension are rotated together).
- `interleaved`: the original Meta/GPT-J form, rotating adjacent pairs (x[2i], x[2i+1]),
  cos/sin of shape [B, S, D/2].

Variant `triton` is the reference kernel of this project (`_rope_triton.py`): one Triton
launch for q and k together, each program reading the cos/sin rows of its positions once
and applying them to every head of q and k there, in fp32 with one rounding per output. It
is the yardstick for how close compile gets to the floor.

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
from kernelwatch.workloads import SuitePart
from kernelwatch.workloads._case import Case
from kernelwatch.workloads._rope_triton import rope_triton as rope_triton
from kernelwatch.workloads._rope_triton import triton_variant
from kernelwatch.workloads._rope_upstream import te_apply_rotary_pos_emb


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
# The best kernel this project knows for RoPE (the roofline page's yardstick): its own
# Triton kernel, one launch for q and k, cos/sin read once per position.
REFERENCE = "triton"

# asv parameters, in order: benchmarks/rope.py declares them from here and the CLI selects by name.
PARAMS = {"shape": list(SHAPES), "form": list(FORMS), "dtype": list(DTYPES),
          "variant": list(VARIANTS)}
# `kernelwatch run --quick`: the CPU-sized case, and the metrics that answer "is it right, is
# it faster", plus one cold compile and the recompile count of the static variant.
# Libraries whose kernels a variant runs (`kernelwatch run --target DIST=REPO`, `--versions`).
TARGETS = {"liger-kernel": ["liger"], "transformer-engine": ["te-fused"]}
QUICK = {"shape": ["tiny"], "form": ["rotate-half"], "dtype": ["float32"],
         "variant": ["eager", "compile", "compile-dynamic"]}
QUICK_COMPILE_VARIANT = "compile"
# On the CPU the caller's time is the device time: the quick run records it once; and the
# relative error is the gated one (each track is a process: seconds of make demo).
QUICK_TRACKS = ("time", "rel_l2_error")
# Named selections (`kernelwatch run --suite NAME`, workloads.SUITE_NAMES). Per commit: the
# three real attentions in bf16, the headline form, eager against compile, the reference
# kernel and Liger's; the cold compile once, at 8B. Nightly: both forms and half dtypes, every
# variant, and compile health (recompiles at a new length).
_REAL = {"shape": ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"]}
SUITES = {
    "gpu-commit": [
        SuitePart({**_REAL, "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["eager", "compile", "triton", "liger"]},
                  ("time", "accuracy"), ("time", "caller_time", "rel_l2_error")),
        SuitePart({"shape": ["llama-3.1-8b"], "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["compile"]}, ("compile",), ("cold_compile",)),
    ],
    "gpu-nightly": [
        SuitePart({**_REAL, "dtype": ["bfloat16", "float16"]}, ("time", "accuracy"),
                  ("time", "caller_time", "rel_l2_error")),
        SuitePart({**_REAL, "dtype": ["bfloat16"], "variant": list(COMPILED)}, ("compile",)),
    ],
}
# Metric family -> asv class in benchmarks/rope.py (`kernelwatch run --metric FAMILY`).
BENCHMARKS = {"time": "RopeTime", "compile": "RopeCompile", "memory": "RopeMemory",
              "cuda-memory": "RopeCudaMemory", "accuracy": "RopeAccuracy",
              "device-check": "RopeDeviceCheck", "kernels": "RopeKernels"}
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


def device_method_for(params: dict) -> str:
    """How a GPU's device time of a RoPE case is read (the report's "device clock")."""
    return DEVICE_METHOD


def bytes_for(params: dict) -> int:
    """bytes_moved for a benchmark's params dict (used by the report)."""
    return bytes_moved(SHAPES[params["shape"]], params["form"], params["dtype"])
