"""The ViT VAE's declaration: a ViTok-v2-style encoder and decoder (the model and the
variants: case.py, model.py), its released configs, the variants' devices and libraries,
SSIM gates, FLOPs and break-even.

The write-up this grew from (a ViTok compile and INT8 research plan) expected compile at
1.2-1.5x, INT8 at 1.0-1.25x, FP8 at 1.3-1.6x and a break-even of about 1200 samples; this
workload measures them, per encoder and decoder, per batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kernelwatch.time_methods import CUDA_GRAPH, PROFILER_KERNELS
from kernelwatch.workloads.declaration import (
    CPU,
    CUDA,
    DEVICE_TYPES,
    Library,
    SuitePart,
    Variant,
    Workload,
    compile_variant,
    variant_table,
)


@dataclass(frozen=True)
class VaeConfig:
    width: int
    heads: int
    encoder_depth: int
    decoder_depth: int
    patch: int
    channels: int  # the latent's channels per patch (C)
    image: int  # square images of this many pixels a side

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2

    @property
    def mlp_hidden(self) -> int:
        # ViTok's SwiGLU hidden size: 2.67 x width, rounded up to a multiple of 16.
        return 16 * math.ceil(2.67 * self.width / 16)


# ViTok-v2's released variants: "350M-f16x64" is `Ld4-Ld24/1x16x64`, "5B" is
# `Td4-T` (width 3072, 24 heads, depths 4/40), both on 256 x 256 images with 16 x 16
# patches (256 tokens); `tiny` is sized for CPU tests.
CONFIGS: dict[str, VaeConfig] = {
    "tiny": VaeConfig(width=64, heads=2, encoder_depth=1, decoder_depth=2, patch=16,
                      channels=16, image=64),
    "350M-f16x64": VaeConfig(1024, 16, 4, 24, 16, 64, 256),
    "5B": VaeConfig(3072, 24, 4, 40, 16, 64, 256),
}
PARTS = ("encoder", "decoder")
BATCHES = ("1", "8", "32")
# The whole encoder or decoder compiled in one of variants.py's modes.
COMPILED = ("compile", "compile-reduce-overhead", "compile-max-autotune")
QUANTIZED = ("int8-weight-only", "int8-dynamic", "fp8")
_FP8 = "FP8 matmuls need a CUDA GPU of compute capability 8.9 or newer"
# torchao quantizes the int8 and fp8 variants (each also compiled, as torchao means them to
# run); torch-ao-int8-dynamic is torch's own, the write-up's call, with CPU kernels only.
VARIANTS = variant_table(
    Variant("eager"),
    *(compile_variant(mode) for mode in COMPILED),
    *(Variant(f"{q}{c}", CUDA if q == "fp8" else DEVICE_TYPES, _FP8 if q == "fp8" else "",
              library="torchao") for q in QUANTIZED for c in ("", "-compile")),
    Variant("torch-ao-int8-dynamic", CPU, "torch.ao dynamic quantization has CPU kernels only"),
)
FP8_MIN_CAPABILITY = (8, 9)

PARAMS = {"config": list(CONFIGS), "part": list(PARTS), "batch": list(BATCHES),
          "variant": list(VARIANTS)}
SUITES = {
    # `kernelwatch run --quick` (make demo): does compiling the decoder pay, on the CPU-sized
    # model. Quality and the other variants are in the tests and full runs: every process
    # here costs seconds of the demo.
    "quick": [SuitePart({"config": ["tiny"], "part": ["decoder"], "batch": ["1"],
                         "variant": ["eager", "compile"]}, ("time",), ("time",))],
    # Per commit: the 350M decoder at batch 8, eager against compile, with SSIM; one cold
    # compile. The INT8 variants are nightly's: dynamic INT8 compiled (the INT8 that pays on
    # a GPU) takes about 60 s a process (its three: 3-5 min of a commit, its SSIM once past
    # 171 s after the other workloads on an H100, 64.8 s alone); weight-only INT8 runs at
    # 0.01x on CUDA (ATen's plain int8 matmul). Nightly: both parts, three batches, every
    # variant.
    "gpu-commit": [
        SuitePart({"config": ["350M-f16x64"], "part": ["decoder"], "batch": ["8"],
                   "variant": ["eager", "compile"]},
                  ("time", "quality"), ("time", "caller_time", "ssim")),
        SuitePart({"config": ["350M-f16x64"], "part": ["decoder"], "batch": ["8"],
                   "variant": ["compile"]}, ("compile",), ("cold_compile",)),
    ],
    "gpu-nightly": [
        SuitePart({"config": ["350M-f16x64"], "batch": ["1", "8", "32"]},
                  ("time", "quality", "first-run")),
    ],
}
# Metric family -> asv class in benchmarks/vae.py.
BENCHMARKS = {"time": "VaeTime", "first-run": "VaeFirstRun", "compile": "VaeCompile",
              "memory": "VaeMemory", "cuda-memory": "VaeCudaMemory", "quality": "VaeQuality",
              "device-check": "VaeDeviceCheck"}
CHECKPOINT_ENV = "KERNELWATCH_VAE_CHECKPOINT"
SETTINGS = {"checkpoint": CHECKPOINT_ENV}

SEED = 0
# Quality a correct compiled variant keeps against eager on the CPU (fp32: reordered sums
# only). The GPU's bf16 targets are the gate below, reported rather than asserted.
CPU_COMPILE_MIN_SSIM = 0.999
# The quality gate: SSIM of a variant's reconstruction against eager's, per kind of variant.
SSIM_GATE = {"compile": 0.99, "int8": 0.98, "fp8": 0.98, "torch-ao": 0.98}
# Quality is judged on other crops than the timed batch: fresh inputs, still photographs.
FRESH_IMAGE_OFFSET = 1000


def device_time_uses_graph(variant: str) -> bool:
    """Whether device time replays the calls from a CUDA graph. Not for reduce-overhead
    (it replays its own graphs, which cannot nest in a capture), nor for torchao's quantized
    tensors run eagerly (their dispatch is not known to be capturable): those are the
    profiler's kernel time of plain calls, which leaves out the GPU's waits for the host."""
    return variant != "compile-reduce-overhead" and variant not in QUANTIZED


def device_time_method(variant: str) -> str:
    """How a GPU's device time of this variant is read (measure.time_device)."""
    return CUDA_GRAPH if device_time_uses_graph(variant) else PROFILER_KERNELS


def device_method_for(params: dict) -> str:
    """device_time_method for a benchmark's params dict (used by the report)."""
    return device_time_method(params["variant"])


def break_even_samples(one_time_seconds: float, baseline_seconds_per_batch: float,
                       variant_seconds_per_batch: float, batch: int) -> float | None:
    """Images after which a variant's one-time cost (compile, quantization) has paid: the
    cost over the time it saves per image; None when it saves nothing."""
    saving = (baseline_seconds_per_batch - variant_seconds_per_batch) / batch
    return one_time_seconds / saving if saving > 0 else None


def variant_kind(variant: str) -> str | None:
    """compile, int8, fp8 or torch-ao (None for eager): the write-up's groups."""
    for key in ("fp8", "int8", "torch-ao"):
        if variant.startswith(key):
            return key
    return "compile" if "compile" in variant else None


def ssim_below_gate(variant: str, ssim: float) -> float | None:
    """The variant's SSIM gate when `ssim` falls under it, else None (passes, or eager)."""
    gate = SSIM_GATE.get(variant_kind(variant) or "")
    return gate if gate and ssim < gate else None


def quality_gate(track: str, params: dict, value: float) -> str | None:
    gate = ssim_below_gate(params.get("variant", ""), value) if track == "track_ssim" else None
    return f"SSIM {value:.4f} < {gate}" if gate else None


def flops_for(params: dict) -> int | None:
    """Matmul FLOPs of one call of a part (2 per multiply-add; attention's QK^T and PV
    included), for TFLOP/s in the report."""
    try:
        cfg, batch = CONFIGS[params["config"]], int(params["batch"])
        part = params["part"]
    except (KeyError, ValueError):
        return None
    n = cfg.tokens
    depth = cfg.encoder_depth if part == "encoder" else cfg.decoder_depth
    per_block = (2 * n * cfg.width * (4 * cfg.width + 3 * cfg.mlp_hidden)
                 + 4 * n * n * cfg.width)
    ends = 2 * n * cfg.width * (3 * cfg.patch ** 2 + cfg.channels)
    return batch * (depth * per_block + ends)


# torchao's quantize_ with the config classes (case.py), as GPT-2 calls it.
LIBRARIES = {"torchao": Library(">=0.9.0", "before 0.9.0 quantize_ takes the lower-case "
                                "functions (int8_weight_only()), not the config classes "
                                "called here")}


SPEC = Workload(
    name="vae", params=PARAMS, metrics=BENCHMARKS, variants=VARIANTS, suites=SUITES,
    settings=SETTINGS, libraries=LIBRARIES, flops_for=flops_for, quality_gate=quality_gate,
    device_method_for=device_method_for)
