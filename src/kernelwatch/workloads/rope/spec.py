"""RoPE's declaration: rotary position embedding applied to the queries and keys of one
attention layer, in two forms:
- `rotate-half`: Hugging Face Llama's `apply_rotary_pos_emb`, `x*cos + rotate_half(x)*sin`
  with cos/sin of shape [B, S, D] from `LlamaRotaryEmbedding` (the two halves of the head
  dimension are rotated together).
- `interleaved`: the original Meta/GPT-J form, rotating adjacent pairs (x[2i], x[2i+1]),
  cos/sin of shape [B, S, D/2].

The minimal traffic is one read and one write of q and k plus one read of cos and sin, so
the floor is memory bandwidth: `bytes_moved / copy bandwidth`. FLOPs are ~3 per element and
irrelevant to the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwatch.time_methods import CUDA_GRAPH
from kernelwatch.workloads.declaration import (
    CUDA,
    Library,
    SuitePart,
    Variant,
    Workload,
    compile_variant,
    variant_table,
)


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
ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
# fp32 on the CPU; the half types on the GPU (a bf16 CPU RoPE measures nothing users run).
DTYPES_BY_DEVICE = {"cpu": ("float32",), "cuda": ("bfloat16", "float16")}
COMPILED = ("compile", "compile-dynamic", "compile-max-autotune")  # modes of variants.py
VARIANTS = variant_table(
    Variant("eager"),
    *(compile_variant(mode) for mode in COMPILED),
    Variant("te-fused", CUDA, "TransformerEngine's fused RoPE kernel",
            library="transformer-engine"),
    # Importing Liger's RoPE imports its whole package, every op and transformers: 0.75 s
    # on a 2-core CPU after the suite's own imports, where the lent GPUs' Liger processes
    # took about 4 s more than the reference kernel's. Where peft is installed (the GPU
    # machines' image), liger_kernel.utils imports it, peft imports transformers' models,
    # their quantizers import torchao, and torchao's mx_formats asks has_triton() at import,
    # which initialises CUDA (docs/measurement.md). The server imports Liger without peft,
    # which Liger already treats as optional: only its transformers patches for peft models
    # use it, never its ops.
    Variant("liger", CUDA, "Liger Kernel's RoPE is a Triton kernel", library="liger-kernel",
            server_import="liger_kernel.ops.rope", server_import_without=("peft",)),
    # The project's reference kernel (kernels.py): one Triton launch for q and k together,
    # each program reading the cos/sin rows of its positions once, fp32 with one rounding
    # per output; the yardstick for how close compile gets to the floor.
    Variant("triton", CUDA, "the project's reference RoPE is a Triton kernel"),
)
# asv parameters, in order: benchmarks/rope.py declares them from here and the CLI selects by name.
PARAMS = {"shape": list(SHAPES), "form": list(FORMS), "dtype": list(DTYPES),
          "variant": list(VARIANTS)}
# Metric family -> asv class in benchmarks/rope.py (`kernelwatch run --metric FAMILY`).
BENCHMARKS = {"time": "RopeTime", "compile": "RopeCompile", "memory": "RopeMemory",
              "cuda-memory": "RopeCudaMemory", "accuracy": "RopeAccuracy",
              "device-check": "RopeDeviceCheck", "kernels": "RopeKernels"}
# Every variant's calls are captured in a CUDA graph and replayed for device time.
DEVICE_METHOD = CUDA_GRAPH

_REAL = {"shape": ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"]}
_TINY = {"shape": ["tiny"], "form": ["rotate-half"], "dtype": ["float32"]}
SUITES = {
    # The CPU-sized case and the metrics that answer "is it right, is it faster" (on the
    # CPU the caller's time is the device time: recorded once), plus one cold compile and
    # the recompile count of the static variant.
    "quick": [
        SuitePart({**_TINY, "variant": ["eager", "compile", "compile-dynamic"]},
                  ("time", "accuracy"), ("time", "rel_l2_error")),
        SuitePart({**_TINY, "variant": ["compile"]}, ("compile",),
                  ("cold_compile", "recompiles")),
    ],
    # Per commit: the three real attentions in bf16, the headline form, eager against
    # compile, the reference kernel and Liger's; the cold compile once, at 8B. Five processes
    # of one commit on an H200 (issue 34) read eager within 1.02x of each other, compile up
    # to 1.54x and Liger 1.09x; three runs on an H100 read the reference kernel 1.07x apart at
    # 8B, one kernel and one launch in each (docs/findings/gpu-history-h200.md). Those three
    # are timed in three processes, samples pooled, so the median is the level most of the
    # processes read, not one process's.
    "gpu-commit": [
        SuitePart({**_REAL, "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["eager"]},
                  ("time", "accuracy"), ("time", "caller_time", "rel_l2_error")),
        SuitePart({**_REAL, "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["compile", "triton", "liger"]},
                  ("time",), ("time", "caller_time"), processes=3),
        SuitePart({**_REAL, "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["compile", "triton", "liger"]}, ("accuracy",),
                  ("rel_l2_error",)),
        SuitePart({"shape": ["llama-3.1-8b"], "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["compile"]}, ("compile",), ("cold_compile",)),
        # The kernels and the launch autotuning picked for them: compile's two picks on an
        # H200 differ by 1.1-1.17x, and a commit whose pick moved is explained, not flagged.
        SuitePart({**_REAL, "form": ["rotate-half"], "dtype": ["bfloat16"],
                   "variant": ["compile", "triton"]}, ("kernels",)),
    ],
    # Nightly: both forms and half dtypes, every variant, and compile health (recompiles at
    # a new length).
    "gpu-nightly": [
        SuitePart({**_REAL, "dtype": ["bfloat16", "float16"]}, ("time", "accuracy"),
                  ("time", "caller_time", "rel_l2_error")),
        SuitePart({**_REAL, "dtype": ["bfloat16"], "variant": list(COMPILED)}, ("compile",)),
    ],
}

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


def bytes_moved(shape: RopeShape, form: str, dtype: str) -> int:
    """The fewest bytes any implementation must move: read+write q and k, read cos and sin."""
    s = shape
    qk = s.batch * (s.q_heads + s.kv_heads) * s.seq_len * s.head_dim
    table_width = s.head_dim if form == "rotate-half" else s.head_dim // 2
    tables = 2 * s.batch * s.seq_len * table_width
    return (2 * qk + tables) * ITEMSIZE[dtype]


def bytes_for(params: dict) -> int:
    """bytes_moved for a benchmark's params dict (used by the report)."""
    return bytes_moved(SHAPES[params["shape"]], params["form"], params["dtype"])


def device_method_for(params: dict) -> str:
    """How a GPU's device time of a RoPE case is read (the report's "device clock")."""
    return DEVICE_METHOD


# The releases upstream.py calls: TransformerEngine's apply_rotary_pos_emb in its three
# module paths (the interleaved form from 2.3.0), Liger's LigerRopeFunction in one form.
LIBRARIES = {
    "transformer-engine": Library(">=1.13.0", "releases before 1.13.0 were not surveyed "
                                  "(their wheels hold the framework code elsewhere)"),
    "liger-kernel": Library(">=0.1.0", "there is no release before 0.1.0"),
}

SPEC = Workload(
    name="rope", params=PARAMS, metrics=BENCHMARKS, variants=VARIANTS, suites=SUITES,
    reference="triton", libraries=LIBRARIES, bytes_for=bytes_for, quality_gate=quality_gate,
    device_method_for=device_method_for)
