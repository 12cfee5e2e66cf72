"""GPTQ's declaration: quantization of one linear layer's weight as llm-compressor's
`quantize_weight` does it (the algorithm and its variants: case.py). Shapes are real models'
linears; the variants are eager, two compiled forms, the project's fused Triton kernel and
llm-compressor's own."""

from __future__ import annotations

from dataclasses import dataclass

from kernelwatch.time_methods import CUDA_EVENTS
from kernelwatch.workloads.declaration import (
    Library,
    SuitePart,
    Variant,
    Workload,
    variant_table,
)


@dataclass(frozen=True)
class LayerShape:
    rows: int  # out_features
    cols: int  # in_features: the dimension GPTQ walks and the Hessian spans


# Weight shapes of real linears (config.json: hidden, intermediate, kv heads x head_dim).
SHAPES: dict[str, LayerShape] = {
    "tiny/proj": LayerShape(64, 256),
    "tinyllama-1.1b/q_proj": LayerShape(2048, 2048),
    "tinyllama-1.1b/k_proj": LayerShape(256, 2048),
    "tinyllama-1.1b/v_proj": LayerShape(256, 2048),
    "tinyllama-1.1b/o_proj": LayerShape(2048, 2048),
    "tinyllama-1.1b/gate_proj": LayerShape(5632, 2048),
    "tinyllama-1.1b/up_proj": LayerShape(5632, 2048),
    "tinyllama-1.1b/down_proj": LayerShape(2048, 5632),
    "qwen2.5-3b/q_proj": LayerShape(2048, 2048),
    "qwen2.5-3b/k_proj": LayerShape(256, 2048),
    "qwen2.5-3b/v_proj": LayerShape(256, 2048),
    "qwen2.5-3b/o_proj": LayerShape(2048, 2048),
    "qwen2.5-3b/gate_proj": LayerShape(11008, 2048),
    "qwen2.5-3b/up_proj": LayerShape(11008, 2048),
    "qwen2.5-3b/down_proj": LayerShape(2048, 11008),
}


@dataclass(frozen=True)
class Scheme:
    bits: int
    symmetric: bool
    group_size: int

    # compressed-tensors keeps the signed range for asymmetric schemes too (int4: [-8, 7]) and
    # moves the zero point instead; matching it keeps codes comparable with llm-compressor's.
    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1


SCHEMES = {
    "w4-sym-g128": Scheme(4, True, 128),
    "w4-asym-g128": Scheme(4, False, 128),
    "w8-sym-g128": Scheme(8, True, 128),
}


VARIANTS = variant_table(
    Variant("eager"),
    # The column loop of one block compiled (upstream's proposal), and one column of it.
    Variant("compile-block"),
    Variant("compile-column"),
    # The project's fused block kernel (kernels.py): on a CPU only under TRITON_INTERPRET=1.
    Variant("triton"),
    Variant("llmcompressor", library="llmcompressor"),
    Variant("llmcompressor-eager", library="llmcompressor"),
)
# The best kernel this project knows for a GPTQ block (the roofline page's yardstick).
REFERENCE = "triton"
# Compiling a whole block unrolls its column loop: its compile cost grows with the block (tens
# of seconds at 16, hours at 128), so the sizes between let a run find the largest block that
# compiles within its budget. Strings: asv params match by repr, and the CLI selects by name.
BLOCKSIZES = ("16", "32", "64", "128")
# The torch.compile mode of compile-block and compile-column (variants.py), shape-generic as
# upstream proposed: the column step sees a narrower tail at every column.
COMPILE_MODE = "compile-dynamic"
# The column loop runs from the host, so a quantization's time on a GPU is its latency there:
# CUDA events around plain calls, the GPU's waits for the host included. The GPU's own work in
# that call is the kernel-time family (GptqKernelTime.track_kernel_time: the profiler's
# busy time).
DEVICE_METHOD = CUDA_EVENTS


def quality_gate(track: str, params: dict, value: float) -> str | None:
    """The report's gate: output error no worse than eager's beyond the stated tolerance."""
    if track == "track_worse_than_eager" and value:
        return "output error worse than eager's"
    return None


PARAMS = {"shape": list(SHAPES), "scheme": list(SCHEMES), "blocksize": list(BLOCKSIZES),
          "variant": list(VARIANTS)}
_TINY = {"shape": ["tiny/proj"], "scheme": ["w4-sym-g128"], "blocksize": ["16"]}
# The GPU suites' case: one real projection at upstream's block, and the variants they time.
_COMMIT = {"shape": ["tinyllama-1.1b/q_proj"], "scheme": ["w4-sym-g128"], "blocksize": ["128"]}
_GPU_VARIANTS = ("eager", "compile-column", "triton", "llmcompressor")
SUITES = {
    # The quick run: eager against upstream's proposal (the whole block compiled), at a
    # block small enough to compile in seconds on a CPU; a few tracks, so it adds about a
    # minute; the compiled block's recompiles.
    "quick": [
        SuitePart({**_TINY, "variant": ["eager", "compile-block"]},
                  ("time", "accuracy", "first-run"),
                  ("time", "first_run", "identical_codes", "output_error")),
        SuitePart({**_TINY, "variant": ["compile-block"]}, ("compile",), ("recompiles",)),
    ],
    # Per commit: one real projection at upstream's block of 128, eager against the fused
    # kernel, llm-compressor's and the compiled column step; the cold compile is the
    # compiled variant's first run. Nightly: every projection of Qwen2.5-3B. The time is a
    # latency (the column loop runs from the host): three runs of one commit on an H100 read
    # it 1.06x (compile-column) to 1.25x (llm-compressor's) apart between processes, so it
    # is timed in three processes, samples pooled (docs/findings/gpu-history-h200.md); five
    # runs of that still read 1.08-1.18x, the host's pace. The GPU's own work in the same
    # call (kernel-time: its kernels' busy time) does not wait on the host: one process.
    "gpu-commit": [
        SuitePart({**_COMMIT, "variant": list(_GPU_VARIANTS)},
                  ("time",), ("time",), processes=3),
        SuitePart({**_COMMIT, "variant": list(_GPU_VARIANTS)},
                  ("kernel-time",)),
        SuitePart({**_COMMIT, "variant": list(_GPU_VARIANTS)},
                  ("accuracy",), ("output_error", "identical_codes")),
        SuitePart({**_COMMIT, "variant": ["compile-column"]}, ("first-run",)),
    ],
    "gpu-nightly": [
        SuitePart({"shape": [s for s in SHAPES if s.startswith("qwen2.5-3b/")],
                   "scheme": ["w4-sym-g128", "w8-sym-g128"], "blocksize": ["128"],
                   "variant": list(_GPU_VARIANTS)},
                  ("time", "kernel-time", "accuracy", "first-run")),
    ],
}
# Metric family -> asv class in benchmarks/gptq.py (`kernelwatch run --metric FAMILY`).
BENCHMARKS = {"time": "GptqTime", "kernel-time": "GptqKernelTime",
              "first-run": "GptqFirstRun", "compile": "GptqCompile",
              "memory": "GptqMemory", "cuda-memory": "GptqCudaMemory",
              "accuracy": "GptqAccuracy"}
# What importing llm-compressor's GPTQ needs in an environment beside torch (the library itself
# goes in with --no-deps): exact versions, as the host's `kernelwatch[gptq]` resolves them.
TARGET_REQUIREMENTS = {"llmcompressor": {
    "transformers": "5.17.0", "compressed-tensors": "0.19.0", "loguru": "0.7.3",
    "datasets": "5.2.0", "accelerate": "1.15.0", "pillow": "", "pyyaml": "", "requests": "",
    "tqdm": ""}}
# A variant whose held-out output error exceeds eager's by more than this is flagged.
QUALITY_TOLERANCE = 0.01
CALIBRATION_SAMPLES = 512


# llm-compressor's quantize_weight as upstream.py follows it: four forms back to 0.4.0. 0.2-0.5
# built `llmcompressor-dev` unless released; 2019's `neuralmagicml` and 2024's
# `sparseml-nightly` (the history it grew from) are another project.
LIBRARIES = {"llmcompressor": Library(
    ">=0.4.0", "GPTQ there is GPTQWrapper, a module wrapper fed by forward hooks, with no "
    "function of a weight and a Hessian to call",
    ("llmcompressor-dev", "llmcompressor-nightly"))}


SPEC = Workload(
    name="gptq", params=PARAMS, metrics=BENCHMARKS, variants=VARIANTS, suites=SUITES,
    reference=REFERENCE, target_requirements=TARGET_REQUIREMENTS, libraries=LIBRARIES,
    quality_gate=quality_gate,
    device_method_for=lambda params: DEVICE_METHOD)
