"""The Llama layer's modules: the tensor ops between the linears, the torch projections,
and TransformerEngine's.

The layer, as Hugging Face's LlamaDecoderLayer computes it (gpt-fast's habit: plain PyTorch,
transformations applied from outside): RMSNorm; one fused QKV projection (bias-free); the
head reshapes; RoPE in the rotate-half form on q and k (the RoPE workload's
`rope_rotate_half`); causal SDPA with grouped-query attention (`enable_gqa`, as HF passes it
when there is no padding mask); the merge of heads and the output projection; a residual;
RMSNorm; a SwiGLU MLP whose gate and up projections are one fused Linear (TE's LayerNormMLP
lays its fc1 out the same way); a residual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from kernelwatch.errors import Unavailable
from kernelwatch.workloads.rope.case import rope_rotate_half

if TYPE_CHECKING:
    from kernelwatch.workloads.llama_layer.spec import LayerShape


def split_heads(qkv: torch.Tensor, heads: int, kv_heads: int, head_dim: int) -> tuple:
    """[B, S, (H + 2 KV) D] -> q [B, H, S, D], k and v [B, KV, S, D]."""
    b, s, _ = qkv.shape
    q, k, v = qkv.split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], dim=-1)
    return (q.view(b, s, heads, head_dim).transpose(1, 2),
            k.view(b, s, kv_heads, head_dim).transpose(1, 2),
            v.view(b, s, kv_heads, head_dim).transpose(1, 2))


def merge_heads(attn: torch.Tensor) -> torch.Tensor:
    """[B, H, S, D] -> [B, S, H D]."""
    b, h, s, d = attn.shape
    return attn.transpose(1, 2).reshape(b, s, h * d)


@dataclass
class TensorOps:
    """The layer's tensor operations between its linears: what the surgical variant
    compiles (the write-up's "tensor ops")."""

    split_heads: Callable = split_heads
    rope: Callable = rope_rotate_half
    merge_heads: Callable = merge_heads


class RMSNorm(nn.Module):
    """HF LlamaRMSNorm: normalise in float32, scale in the input's dtype."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class TorchProjections(nn.Module):
    """Norm+QKV, output projection and norm+SwiGLU MLP from torch modules."""

    def __init__(self, s: LayerShape):
        super().__init__()
        self.input_norm = RMSNorm(s.hidden, s.rms_eps)
        self.qkv = nn.Linear(s.hidden, s.qkv_width, bias=False)
        self.o_proj = nn.Linear(s.heads * s.head_dim, s.hidden, bias=False)
        self.post_norm = RMSNorm(s.hidden, s.rms_eps)
        self.gate_up = nn.Linear(s.hidden, 2 * s.intermediate, bias=False)
        self.down = nn.Linear(s.intermediate, s.hidden, bias=False)

    def norm_qkv(self, x: torch.Tensor) -> torch.Tensor:
        return self.qkv(self.input_norm(x))

    def out(self, attn: torch.Tensor) -> torch.Tensor:
        return self.o_proj(attn)

    def norm_mlp(self, h: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(self.post_norm(h)).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class LlamaLayer(nn.Module):
    def __init__(self, shape: LayerShape, projections: nn.Module, ops: TensorOps | None = None):
        super().__init__()
        self.shape = shape
        self.proj = projections
        self.ops = ops or TensorOps()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        s = self.shape
        q, k, v = self.ops.split_heads(self.proj.norm_qkv(x), s.heads, s.kv_heads, s.head_dim)
        q, k = self.ops.rope(q, k, cos, sin)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                              enable_gqa=s.heads != s.kv_heads)
        h = x + self.proj.out(self.ops.merge_heads(attn))
        return h + self.proj.norm_mlp(h)


# ----------------------------------------------------------------------------- TransformerEngine


def transformer_engine():
    try:
        import transformer_engine.pytorch as te
    except ImportError as exc:
        raise Unavailable(
            f"the te backend needs transformer_engine, which does not import here ({exc}); "
            "build the CUDA image with --build-arg WITH_TE=1 (docs/workloads.md)") from exc
    return te


FP8_MIN_CAPABILITY = (8, 9)


def fp8_available(device: torch.device) -> bool:
    return (device.type == "cuda"
            and torch.cuda.get_device_capability(device) >= FP8_MIN_CAPABILITY)


class TeProjections(nn.Module):
    """The same projections from TransformerEngine's fused modules, run under FP8 autocast
    (delayed scaling, TE's default recipe) where the GPU has FP8."""

    def __init__(self, s: LayerShape, weights: dict[str, torch.Tensor], dtype: torch.dtype,
                 device: torch.device):
        super().__init__()
        te = transformer_engine()
        common = {"bias": False, "params_dtype": dtype, "device": device}
        self.norm_qkv_ = te.LayerNormLinear(s.hidden, s.qkv_width, eps=s.rms_eps,
                                            normalization="RMSNorm", **common)
        self.o_proj = te.Linear(s.heads * s.head_dim, s.hidden, **common)
        self.norm_mlp_ = te.LayerNormMLP(s.hidden, s.intermediate, eps=s.rms_eps,
                                         normalization="RMSNorm", activation="swiglu",
                                         **common)
        with torch.no_grad():
            for param, name in ((self.norm_qkv_.layer_norm_weight, "input_norm.weight"),
                                (self.norm_qkv_.weight, "qkv.weight"),
                                (self.o_proj.weight, "o_proj.weight"),
                                (self.norm_mlp_.layer_norm_weight, "post_norm.weight"),
                                (self.norm_mlp_.fc1_weight, "gate_up.weight"),
                                (self.norm_mlp_.fc2_weight, "down.weight")):
                param.copy_(weights[name])
        self.fp8 = fp8_available(device)
        self._autocast = getattr(te, "fp8_autocast", None) or te.autocast

    def _under_fp8(self, fn: Callable, x: torch.Tensor) -> torch.Tensor:
        if not self.fp8:
            return fn(x)
        with self._autocast(enabled=True):
            return fn(x)

    def norm_qkv(self, x: torch.Tensor) -> torch.Tensor:
        return self._under_fp8(self.norm_qkv_, x)

    def out(self, attn: torch.Tensor) -> torch.Tensor:
        return self._under_fp8(self.o_proj, attn)

    def norm_mlp(self, h: torch.Tensor) -> torch.Tensor:
        return self._under_fp8(self.norm_mlp_, h)


def te_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("transformer_engine")
    except metadata.PackageNotFoundError:
        return getattr(__import__("transformer_engine"), "__version__", "0")


def release(version: str) -> tuple[int, ...]:
    """(2, 20, 2) from "2.20.2", "2.20.2+cu13" or "2.20.2.dev0"."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
