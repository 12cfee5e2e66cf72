"""A ViT VAE (ViTok-v2 style) encoder and decoder: compile modes, INT8, FP8, image quality.

The write-up this grew from (a ViTok compile and INT8 research plan) expected compile at
1.2-1.5x, INT8 at 1.0-1.25x, FP8 at 1.3-1.6x and a break-even of about 1200 samples; this
workload measures them, per encoder and decoder, per batch size.

The model, in plain PyTorch as ViTok-v2 (Na-VAE/vitok-release) builds it: pixels are cut
into p x p patches and embedded by a bias-free Linear; each block normalises once
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
from torch.nn import functional as F

from kernelwatch import measure, variants
from kernelwatch.errors import KernelwatchError, Unavailable, check_choices
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.rope import rope_interleaved


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
QUICK = {"config": ["tiny"], "part": ["decoder"], "batch": ["1"],
         "variant": ["eager", "compile"]}
QUICK_METRICS = ("time",)
QUICK_TRACKS = ("time",)
# Metric family -> asv class in benchmarks/vae.py.
BENCHMARKS = {"time": "VaeTime", "first-run": "VaeFirstRun", "compile": "VaeCompile",
              "memory": "VaeMemory", "cuda-memory": "VaeCudaMemory", "quality": "VaeQuality",
              "device-check": "VaeDeviceCheck"}
CHECKPOINT_ENV = "KERNELWATCH_VAE_CHECKPOINT"
SETTINGS = {"checkpoint": CHECKPOINT_ENV}

SEED = 0
RANDOM_LAYERSCALE = 0.1
ROPE_THETA = 100.0  # over patch positions (at most 16 a side here), not text positions
# The photographs of scikit-image (`skimage.data`) shipped inside its wheel.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina")
# Quality a correct compiled variant keeps against eager on the CPU (fp32: reordered sums
# only). The GPU's bf16 targets are the gate below, reported rather than asserted.
CPU_COMPILE_MIN_SSIM = 0.999
# The quality gate: SSIM of a variant's reconstruction against eager's, per kind of variant.
SSIM_GATE = {"compile": 0.99, "int8": 0.98, "fp8": 0.98, "torch-ao": 0.98}
# Quality is judged on other crops than the timed batch: fresh inputs, still photographs.
FRESH_IMAGE_OFFSET = 1000
# PSNR of identical images is infinite; the history records this ceiling instead.
PSNR_CEILING_DB = 100.0


# ----------------------------------------------------------------------------- the model


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_norm = nn.RMSNorm(self.head_dim)
        self.k_norm = nn.RMSNorm(self.head_dim)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, width = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = rope_interleaved(self.q_norm(q), self.k_norm(k), cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, width))


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(width, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Attention and MLP in parallel on one normalised input, each with its LayerScale."""

    def __init__(self, cfg: VaeConfig):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.width)
        self.attn = Attention(cfg.width, cfg.heads)
        self.mlp = SwiGLU(cfg.width, cfg.mlp_hidden)
        self.attn_scale = nn.Parameter(torch.full((cfg.width,), RANDOM_LAYERSCALE))
        self.mlp_scale = nn.Parameter(torch.full((cfg.width,), RANDOM_LAYERSCALE))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return x + self.attn_scale * self.attn(h, cos, sin) + self.mlp_scale * self.mlp(h)


def axial_rope_angles(cfg: VaeConfig) -> torch.Tensor:
    """[tokens, head_dim/2] angles: the first half of each head's pairs turn with the patch's
    row, the second half with its column (2D axial RoPE)."""
    side = cfg.image // cfg.patch
    quarter = cfg.width // cfg.heads // 4
    inv_freq = 1.0 / ROPE_THETA ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(side, dtype=torch.float64),
                                torch.arange(side, dtype=torch.float64), indexing="ij")
    return torch.cat((rows.reshape(-1, 1) * inv_freq, cols.reshape(-1, 1) * inv_freq), dim=-1)


class Tower(nn.Module):
    """A stack of blocks with the RoPE tables as buffers (moved and cast with the model)."""

    def __init__(self, cfg: VaeConfig, depth: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(depth))
        self.norm = nn.RMSNorm(cfg.width)
        theta = axial_rope_angles(cfg)[None]  # [1, tokens, head_dim/2]: broadcast over batch
        self.register_buffer("cos", theta.cos().float(), persistent=False)
        self.register_buffer("sin", theta.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x)


class Encoder(nn.Module):
    """[B, 3, H, W] pixels in [-1, 1] -> [B, tokens, C] latents."""

    def __init__(self, cfg: VaeConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Linear(3 * cfg.patch ** 2, cfg.width, bias=False)
        self.tower = Tower(cfg, cfg.encoder_depth)
        self.to_latent = nn.Linear(cfg.width, cfg.channels, bias=False)
        self.latent_norm = nn.LayerNorm(cfg.channels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b, p = pixels.shape[0], self.cfg.patch
        side = self.cfg.image // p
        patches = (pixels.reshape(b, 3, side, p, side, p).permute(0, 2, 4, 1, 3, 5)
                   .reshape(b, side * side, 3 * p * p))
        return self.latent_norm(self.to_latent(self.tower(self.patch_embed(patches))))


class Decoder(nn.Module):
    """[B, tokens, C] latents -> [B, 3, H, W] pixels."""

    def __init__(self, cfg: VaeConfig):
        super().__init__()
        self.cfg = cfg
        self.from_latent = nn.Linear(cfg.channels, cfg.width, bias=False)
        self.tower = Tower(cfg, cfg.decoder_depth)
        self.head = nn.Linear(cfg.width, 3 * cfg.patch ** 2, bias=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, p = latents.shape[0], self.cfg.patch
        side = self.cfg.image // p
        patches = self.head(self.tower(self.from_latent(latents)))
        return (patches.reshape(b, side, side, 3, p, p).permute(0, 3, 1, 4, 2, 5)
                .reshape(b, 3, side * p, side * p))


class Autoencoder(nn.Module):
    def __init__(self, cfg: VaeConfig):
        super().__init__()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixels))


def load_checkpoint(model: Autoencoder, path: Path) -> None:
    """Load a safetensors file into `model`; one clear error for a file that is not this
    config's: the first missing, unexpected or mismatched tensor, with both shapes."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise KernelwatchError(f"{path} does not exist; {CHECKPOINT_ENV} must name a "
                               ".safetensors file of the selected config")
    saved = load_file(str(path))
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in saved:
            raise KernelwatchError(f"{path} has no tensor {name!r} (shape "
                                   f"{tuple(tensor.shape)}); it is not a checkpoint of this "
                                   "config: select the config it was saved from")
        if saved[name].shape != tensor.shape:
            raise KernelwatchError(
                f"{path} does not match this config: {name!r} is "
                f"{tuple(saved[name].shape)} there and {tuple(tensor.shape)} here; select "
                "the config it was saved from (--param config=...)")
    extra = sorted(set(saved) - set(own))
    if extra:
        raise KernelwatchError(f"{path} has tensors this config lacks, the first {extra[0]!r}"
                               f" {tuple(saved[extra[0]].shape)}; select the config it was "
                               "saved from")
    model.load_state_dict(saved)


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
        load_checkpoint(model, Path(path))
    return model.to(dtype).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- inputs


@functools.cache
def _photos() -> tuple[torch.Tensor, ...]:
    try:
        from skimage import data
    except ImportError as exc:
        raise Unavailable(f"the VAE's input photographs come from scikit-image, which does not "
                          f"import here ({exc}); pip install 'kernelwatch[vae]'") from exc
    return tuple(torch.from_numpy(getattr(data, name)().copy()).permute(2, 0, 1)
                 for name in PHOTOS)


def photographs(count: int, size: int, offset: int = 0) -> torch.Tensor:
    """[count, 3, size, size] float32 in [-1, 1]: scikit-image's sample photographs, each
    resized (antialiased) so its short side is `size` times 1, 1.5 or 2 and cropped at one of
    several places, some mirrored. Image i of a batch is crop `offset + i` of a fixed
    sequence, so `offset` gives fresh images that are still real photographs."""
    photos = _photos()
    out = []
    for i in range(offset, offset + count):
        photo = photos[i % len(photos)].float()
        k = i // len(photos)
        scale = (1.0, 1.5, 2.0)[k % 3]
        h, w = photo.shape[1:]
        short = round(size * scale)
        new = (short, max(short, round(w * short / h))) if h <= w else (
            max(short, round(h * short / w)), short)
        img = F.interpolate(photo[None], size=new, mode="bilinear", antialias=True,
                            align_corners=False)[0]
        # Where the crop sits: centre, then the corners, in turn.
        top = ((new[0] - size) // 2, 0, new[0] - size, 0, new[0] - size)[(k // 3) % 5]
        left = ((new[1] - size) // 2, 0, new[1] - size, new[1] - size, 0)[(k // 3) % 5]
        img = img[:, top:top + size, left:left + size]
        if (k // 15) % 2:
            img = img.flip(-1)
        out.append(img)
    return (torch.stack(out) / 127.5 - 1.0).clamp(-1, 1)


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


@dataclass
class Quality:
    """A reconstruction against eager's on the same images."""

    ssim: float  # mean over the batch, scikit-image's structural_similarity
    psnr: float  # dB over the batch (peak-to-peak range 2: pixels in [-1, 1]), at most 100


def quality(images: torch.Tensor, reference: torch.Tensor) -> Quality:
    """SSIM and PSNR of `images` against `reference` ([B, 3, H, W] in [-1, 1])."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = images.detach().float().clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy()
    b = reference.detach().float().clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy()
    ssim = sum(structural_similarity(x, y, data_range=2.0, channel_axis=-1)
               for x, y in zip(a, b, strict=True)) / len(a)
    psnr = (PSNR_CEILING_DB if (a == b).all()
            else min(float(peak_signal_noise_ratio(b, a, data_range=2.0)), PSNR_CEILING_DB))
    return Quality(float(ssim), psnr)


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
