"""A ViT VAE (ViTok-v2 style) encoder and decoder: compile modes, INT8, FP8, image quality.

The write-up this grew from (a ViTok compile and INT8 research plan) expected compile at
1.2-1.5x, INT8 at 1.0-1.25x, FP8 at 1.3-1.6x and a break-even of about 1200 samples; this
workload measures them, per encoder and decoder, per batch size.

The model (`_vae_model.py`), in plain PyTorch as ViTok-v2 (Na-VAE/vitok-release) builds
it: pixels are cut into p x p patches and embedded by a bias-free Linear; each block
normalises once
(RMSNorm) and runs attention and a SwiGLU MLP in parallel on that, each scaled by its own
LayerScale; attention has QK-RMSNorm and 2D axial RoPE on interleaved pairs (the RoPE
workload's `rope_interleaved`), and calls SDPA without a mask on fixed-size images, so the
flash path is used. The encoder ends in a Linear(width -> C) + LayerNorm bottleneck; the
decoder maps C back to the width, runs its blocks, and a Linear(width -> p*p*3) head gives
the pixels back.

Variants (a transformation of the eager model, applied from outside):
- `eager`: bf16 on a GPU, fp32 on the CPU;
- `compile`, `compile-reduce-overhead` (CUDA graphs; GPU only), `compile-max-autotune`
  (GPU only; the no-cudagraphs mode, since the device-time timer captures its own graph):
  `torch.compile(fullgraph=True)` of the whole encoder or decoder;
- `int8-weight-only`, `int8-dynamic`: torchao's `quantize_` with `Int8WeightOnlyConfig` /
  `Int8DynamicActivationInt8WeightConfig` of every Linear; `fp8`: torchao's
  `Float8DynamicActivationFloat8WeightConfig` with rowwise scales (GPU of compute
  capability >= 8.9 only); each also `-compile`d, which is how torchao means them to run;
- `torch-ao-int8-dynamic` (CPU only): `torch.ao.quantization.quantize_dynamic`, the
  write-up's call, which has CPU kernels only.

Quality: each variant's reconstruction against the eager one on the same photographs
(scikit-image's sample photos, cropped to the config's image size): PSNR, and SSIM from
scikit-image. For the encoder the reconstruction is the eager decoder's output from the
variant's latents, so both parts are judged in pixels.

Weights are random (seeded) unless $KERNELWATCH_VAE_CHECKPOINT names a safetensors file with
this config's tensors. A trained ViTok starts LayerScale at 1e-4 and learns it; a random
model keeps 0.1, so the blocks' output counts in the reconstruction (at 1e-4 every variant
would match eager by construction and the quality columns would say nothing).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kernelwatch import measure, variants
from kernelwatch.errors import KernelwatchError, Unavailable, check_choices
from kernelwatch.workloads import SuitePart
from kernelwatch.workloads._case import Case
from kernelwatch.workloads._vae_images import PSNR_CEILING_DB as PSNR_CEILING_DB
from kernelwatch.workloads._vae_images import Quality as Quality
from kernelwatch.workloads._vae_images import photographs as photographs
from kernelwatch.workloads._vae_images import quality as quality
from kernelwatch.workloads._vae_model import Autoencoder, load_checkpoint


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
VARIANTS = ("eager", *COMPILED, *(f"{q}{c}" for q in QUANTIZED for c in ("", "-compile")),
            "torch-ao-int8-dynamic")
GPU_ONLY = {
    "compile-reduce-overhead": variants.GPU_ONLY["compile-reduce-overhead"],
    "compile-max-autotune": variants.GPU_ONLY["compile-max-autotune"],
    "fp8": "FP8 matmuls need a CUDA GPU of compute capability 8.9 or newer",
    "fp8-compile": "FP8 matmuls need a CUDA GPU of compute capability 8.9 or newer",
}
CPU_ONLY = {"torch-ao-int8-dynamic": "torch.ao dynamic quantization has CPU kernels only"}
FP8_MIN_CAPABILITY = (8, 9)

PARAMS = {"config": list(CONFIGS), "part": list(PARTS), "batch": list(BATCHES),
          "variant": list(VARIANTS)}
# `kernelwatch run --quick` (make demo): does compiling the decoder pay, on the CPU-sized
# model. Quality and the other variants are in the tests and full runs: every process here
# costs seconds of the demo.
# Libraries whose code a variant runs (`kernelwatch run --target DIST=REPO`, `--versions`):
# torchao quantizes the int8 and fp8 variants (torch-ao-int8-dynamic is torch's own).
TARGETS = {"torchao": [f"{q}{c}" for q in QUANTIZED for c in ("", "-compile")]}
QUICK = {"config": ["tiny"], "part": ["decoder"], "batch": ["1"],
         "variant": ["eager", "compile"]}
QUICK_METRICS = ("time",)
QUICK_TRACKS = ("time",)
# Named selections (workloads.SUITE_NAMES). Per commit: the 350M decoder at batch 8, eager
# against compile and weight-only INT8 compiled, with SSIM; one cold compile. Nightly: both
# parts, three batches, every variant and compile health.
SUITES = {
    "gpu-commit": [
        SuitePart({"config": ["350M-f16x64"], "part": ["decoder"], "batch": ["8"],
                   "variant": ["eager", "compile", "int8-weight-only-compile"]},
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


# ----------------------------------------------------------------------------- the model


def build_model(config: str, dtype: torch.dtype, device: torch.device) -> Autoencoder:
    """The seeded random model (or the checkpoint's weights), in `dtype` on `device`."""
    cfg = CONFIGS[config]
    torch.manual_seed(SEED)
    # Built on the target device: initialising 350M (or 5B) weights on the host first would
    # cost a benchmark process most of its time.
    with torch.device(device):
        model = Autoencoder(cfg)
    path = os.environ.get(CHECKPOINT_ENV)
    if path:
        load_checkpoint(model, Path(path), CHECKPOINT_ENV)
    return model.to(dtype).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- variants


def check_available(variant: str, device: torch.device) -> None:
    """Unavailable (asv: skipped) with the reason when the variant cannot run here."""
    if device.type != "cuda" and variant in GPU_ONLY:
        raise Unavailable(f"{variant} needs a CUDA GPU: {GPU_ONLY[variant]}")
    if device.type == "cuda" and variant in CPU_ONLY:
        raise Unavailable(f"{variant} runs on the CPU only: {CPU_ONLY[variant]}")
    if variant.startswith("fp8") and device.type == "cuda":
        cap = torch.cuda.get_device_capability(device)
        if cap < FP8_MIN_CAPABILITY:
            raise Unavailable(f"{variant} needs compute capability >= 8.9 for FP8 matmuls; "
                              f"this GPU has {cap[0]}.{cap[1]}")
    if variant.split("-compile")[0] in QUANTIZED:
        try:
            import torchao.quantization  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"{variant} needs torchao, which does not import here ({exc}); "
                              "pip install torchao") from exc


def quantize(module: nn.Module, scheme: str) -> None:
    """Quantize every Linear of `module` in place with the scheme's library call."""
    if scheme == "torch-ao-int8-dynamic":
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    config = {"int8-weight-only": Int8WeightOnlyConfig,
              "int8-dynamic": Int8DynamicActivationInt8WeightConfig,
              "fp8": functools.partial(Float8DynamicActivationFloat8WeightConfig,
                                       granularity=PerRow())}[scheme]()
    quantize_(module, config)


def device_time_uses_graph(variant: str) -> bool:
    """Whether device time replays the calls from a CUDA graph. Not for reduce-overhead
    (it replays its own graphs, which cannot nest in a capture), nor for torchao's quantized
    tensors run eagerly (their dispatch is not known to be capturable): those are the
    profiler's kernel time of plain calls, which leaves out the GPU's waits for the host."""
    return variant != "compile-reduce-overhead" and variant not in QUANTIZED


def device_time_method(variant: str) -> str:
    """How a GPU's device time of this variant is read (measure.time_device)."""
    return measure.CUDA_GRAPH if device_time_uses_graph(variant) else measure.PROFILER_KERNELS


def device_method_for(params: dict) -> str:
    """device_time_method for a benchmark's params dict (used by the report)."""
    return device_time_method(params["variant"])


def transform(module: nn.Module, variant: str, device: torch.device
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The variant of `module` (quantized in place where the variant says), as a callable
    without autograd. Compiled variants compile on their first call."""
    scheme = variant.removesuffix("-compile")
    if scheme in QUANTIZED or scheme in CPU_ONLY:
        quantize(module, scheme)
    fn: Callable = module
    if variants.is_compiled(variant):
        # A quantized model compiled ("<scheme>-compile") is compiled in the default mode.
        mode = variant if variant in COMPILED else "compile"
        fn = variants.apply_compile(mode, module, device, fullgraph=True)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return fn(x)

    return run


# ----------------------------------------------------------------------------- a case


def break_even_samples(one_time_seconds: float, baseline_seconds_per_batch: float,
                       variant_seconds_per_batch: float, batch: int) -> float | None:
    """Images after which a variant's one-time cost (compile, quantization) has paid: the
    cost over the time it saves per image; None when it saves nothing."""
    saving = (baseline_seconds_per_batch - variant_seconds_per_batch) / batch
    return one_time_seconds / saving if saving > 0 else None


@dataclass
class VaeCase(Case):
    """One part at one batch: a call runs the part (with its variant applied) on a batch of
    its inputs, pixels for the encoder, latents for the decoder."""

    config: str
    part: str
    batch: int
    variant: str
    device: torch.device
    dtype: torch.dtype
    model: Autoencoder
    module: nn.Module  # the part being measured (encoder or decoder)
    inputs: torch.Tensor  # the part's input: pixels or latents
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None  # after `apply_variant`

    @property
    def input_sets(self) -> list[tuple]:
        return [(self.inputs,)]

    @property
    def device_method(self) -> str:
        return device_time_method(self.variant)

    def apply_variant(self) -> None:
        self.fn = transform(self.module, self.variant, self.device)

    def first_run(self) -> torch.Tensor:
        """The variant's one-time work and its first call (what the first-run metric times)."""
        self.apply_variant()
        return self.run()

    def call(self, inputs: torch.Tensor) -> torch.Tensor:
        try:
            return self.fn(inputs)
        except torch.OutOfMemoryError as exc:
            raise KernelwatchError(
                f"out of memory: {self.config} {self.part} at batch {self.batch} "
                f"({self.variant}) on {torch.cuda.get_device_name(self.device)}; use a "
                "smaller batch (--param batch=...)") from exc

    def reconstruction(self, output: torch.Tensor) -> torch.Tensor:
        """Pixels from this part's output: the decoder's are pixels; the encoder's latents
        go through the (eager) decoder."""
        if self.part == "decoder":
            return output
        with torch.inference_mode():
            return self.model.decoder(output)

    def eager_reconstruction(self, inputs: torch.Tensor) -> torch.Tensor:
        """Eager's reconstruction of `inputs`: call before `apply_variant` (quantizing works
        in place)."""
        with torch.inference_mode():
            return self.reconstruction(self.module(inputs))


def model_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def build_case(config: str, part: str, batch: str, variant: str,
               device: str | torch.device = "cpu", *, image_offset: int = 0,
               apply: bool = True) -> VaeCase:
    """A case ready to call (`apply=False` leaves the variant unapplied: first-run and compile
    metrics time that step themselves). The decoder's inputs are the eager encoder's latents
    of the photographs."""
    check_choices(PARAMS, {"config": [config], "part": [part], "batch": [batch],
                           "variant": [variant]}, where="vae")
    device = torch.device(device)
    check_available(variant, device)
    dtype = model_dtype(device)
    model = build_model(config, dtype, device)
    cfg = CONFIGS[config]
    try:
        pixels = photographs(int(batch), cfg.image, image_offset).to(device, dtype)
        if part == "encoder":
            inputs = pixels
        else:
            with torch.inference_mode():
                inputs = model.encoder(pixels).clone()
    except torch.OutOfMemoryError as exc:
        raise KernelwatchError(f"out of memory building {config} inputs at batch {batch}; "
                               "use a smaller batch (--param batch=...)") from exc
    inputs = inputs.clone()  # a normal tensor: inference tensors cannot be graph inputs
    case = VaeCase(config, part, int(batch), variant, device, dtype, model,
                   getattr(model, part), inputs)
    if apply:
        case.apply_variant()
    return case


def prime_compile(config: str, part: str, batch: str, variant: str, device_type: str) -> None:
    """Compile a case in a child process (fills the FX graph cache for warm-compile)."""
    case = build_case(config, part, batch, variant, device_type)
    case.run()
    measure.synchronize(case.device)


def parameter_count(config: str, part: str) -> int:
    """Weights of one part, counted without building it (meta device)."""
    with torch.device("meta"):
        module = getattr(Autoencoder(CONFIGS[config]), part)
    return sum(p.numel() for p in module.parameters())


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
