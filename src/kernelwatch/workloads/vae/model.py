"""The ViT VAE's modules in plain PyTorch, as ViTok-v2 builds them (the vae workload's
docstring describes the architecture)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from kernelwatch.errors import KernelwatchError
from kernelwatch.workloads.rope.case import rope_interleaved

if TYPE_CHECKING:
    from kernelwatch.workloads.vae.spec import VaeConfig

# A trained ViTok starts LayerScale at 1e-4 and learns it; a random model keeps 0.1, so the
# blocks' output counts in the reconstruction.
RANDOM_LAYERSCALE = 0.1
ROPE_THETA = 100.0  # over patch positions (at most 16 a side here), not text positions


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


def load_checkpoint(model: Autoencoder, path: Path, named_by: str) -> None:
    """Load a safetensors file into `model`; one clear error for a file that is not this
    config's: the first missing, unexpected or mismatched tensor, with both shapes.
    `named_by`: the environment variable that named the file."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise KernelwatchError(f"{path} does not exist; {named_by} must name a "
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
