"""The ViT VAE's cases (the declaration is spec.py): a ViTok-v2-style encoder and decoder
built, transformed by the variant and fed photographs.

The model (`model.py`), in plain PyTorch as ViTok-v2 (Na-VAE/vitok-release) builds
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
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kernelwatch import measure
from kernelwatch.errors import KernelwatchError, Unavailable, check_choices
from kernelwatch.workloads import variants
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.vae.images import PSNR_CEILING_DB as PSNR_CEILING_DB
from kernelwatch.workloads.vae.images import Quality as Quality
from kernelwatch.workloads.vae.images import photographs as photographs
from kernelwatch.workloads.vae.images import quality as quality
from kernelwatch.workloads.vae.model import Autoencoder, load_checkpoint
from kernelwatch.workloads.vae.spec import (
    CHECKPOINT_ENV,
    COMPILED,
    CONFIGS,
    FP8_MIN_CAPABILITY,
    PARAMS,
    QUANTIZED,
    SEED,
    VARIANTS,
    device_time_method,
)
from kernelwatch.workloads.vae.spec import (
    CPU_COMPILE_MIN_SSIM as CPU_COMPILE_MIN_SSIM,
)
from kernelwatch.workloads.vae.spec import (
    FRESH_IMAGE_OFFSET as FRESH_IMAGE_OFFSET,
)
from kernelwatch.workloads.vae.spec import (
    SPEC as SPEC,
)
from kernelwatch.workloads.vae.spec import (
    SSIM_GATE as SSIM_GATE,
)
from kernelwatch.workloads.vae.spec import (
    break_even_samples as break_even_samples,
)
from kernelwatch.workloads.vae.spec import (
    flops_for as flops_for,
)
from kernelwatch.workloads.vae.spec import (
    ssim_below_gate as ssim_below_gate,
)
from kernelwatch.workloads.vae.spec import (
    variant_kind as variant_kind,
)

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
    VARIANTS[variant].check(device.type)
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


def transform(module: nn.Module, variant: str, device: torch.device
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The variant of `module` (quantized in place where the variant says), as a callable
    without autograd. Compiled variants compile on their first call."""
    scheme = variant.removesuffix("-compile")
    if scheme in QUANTIZED or scheme == "torch-ao-int8-dynamic":
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
