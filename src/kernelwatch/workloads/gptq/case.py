"""GPTQ quantization of one linear layer's weight, following llm-compressor's `quantize_weight`.

The algorithm (arXiv 2210.17323, section 3.4), as upstream runs it:
- fp32 math; quantization parameters (one scale/zero per row and group of 128 columns) are
  computed by a min/max observer on the original weight, before the loop;
- dead columns (zero Hessian diagonal) are zeroed and their diagonal set to 1;
- damping `percdamp * mean(diag H)` on the diagonal, then the Cholesky inverse, then its upper
  Cholesky factor. If Cholesky fails, upstream falls back to round-to-nearest (identity Hinv)
  and so does this module, recording that it did;
- per column: quantize, `err = (w - q) / Hinv[i, i]`, `W1[:, i:] -= err x Hinv1[i, i:]`;
  after each block, `W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]`;
- optional activation ordering: columns sorted by decreasing diag(H), undone at the end.

`process_block` is the column loop over one block: the function upstream proposed compiling
(`compile-block`). `column_step` is one column of it (`compile-column`), so compile cost does
not grow with the block size. `triton_block` (`kernels.py`) does the same block in one
fused Triton kernel (`triton`): each program keeps a tile of rows x block columns in
registers and walks the columns, so the block costs one launch instead of about ten kernels
per column. llm-compressor's own GPTQ is `llmcompressor` (`upstream.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernelwatch.errors import KernelwatchError, check_choices
from kernelwatch.workloads import variants
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.gptq.kernels import check_triton, triton_block
from kernelwatch.workloads.gptq.kernels import triton as triton
from kernelwatch.workloads.gptq.spec import (
    BLOCKSIZES as BLOCKSIZES,
)
from kernelwatch.workloads.gptq.spec import (
    CALIBRATION_SAMPLES,
    COMPILE_MODE,
    DEVICE_METHOD,
    PARAMS,
    QUALITY_TOLERANCE,
    SCHEMES,
    SHAPES,
    Scheme,
)
from kernelwatch.workloads.gptq.spec import (
    SPEC as SPEC,
)
from kernelwatch.workloads.gptq.spec import (
    VARIANTS as VARIANTS,
)
from kernelwatch.workloads.gptq.spec import (
    LayerShape as LayerShape,
)
from kernelwatch.workloads.gptq.upstream import llmcompressor_quantizer
from kernelwatch.workloads.gptq.upstream import pin_mismatch as pin_mismatch


def group_qparams(weight: torch.Tensor, scheme: Scheme) -> tuple[torch.Tensor, torch.Tensor]:
    """Min/max observer: scale and zero point per (row, group), shape [rows, cols / group]."""
    rows, cols = weight.shape
    if cols % scheme.group_size:
        raise KernelwatchError(
            f"{cols} columns are not divisible by the group size {scheme.group_size}; "
            f"choose a shape whose in_features is a multiple of {scheme.group_size}"
        )
    groups = weight.reshape(rows, cols // scheme.group_size, scheme.group_size)
    lo = groups.amin(-1).clamp(max=0)
    hi = groups.amax(-1).clamp(min=0)
    eps = torch.finfo(torch.float32).eps
    if scheme.symmetric:
        scale = (torch.maximum(-lo, hi) / ((scheme.qmax - scheme.qmin) / 2)).clamp(min=eps)
        zero = torch.zeros_like(scale)
    else:
        scale = ((hi - lo) / (scheme.qmax - scheme.qmin)).clamp(min=eps)
        zero = (scheme.qmin - lo / scale).round().clamp(scheme.qmin, scheme.qmax)
    return scale, zero


def quantize(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, qmin: int,
             qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integer codes, dequantized values) of `w` (fake quantization)."""
    q = torch.clamp(torch.round(w / scale) + zero, qmin, qmax)
    return q, (q - zero) * scale


def column_step(w1_tail: torch.Tensor, hinv_row: torch.Tensor, scale: torch.Tensor,
                zero: torch.Tensor, qmin: int, qmax: int):
    """Quantize the first column of `w1_tail` and spread its error over the rest of the block.
    Returns (codes, dequantized, scaled error, loss, updated tail)."""
    w = w1_tail[:, 0]
    d = hinv_row[0]
    q, deq = quantize(w, scale, zero, qmin, qmax)
    err = (w - deq) / d
    new_tail = w1_tail - err.unsqueeze(1) * hinv_row.unsqueeze(0)
    return q, deq, err, (w - deq) ** 2 / d**2, new_tail


def process_block(w1: torch.Tensor, hinv1: torch.Tensor, scale: torch.Tensor,
                  zero: torch.Tensor, qmin: int, qmax: int, step: Callable = column_step):
    """The column loop over one block. `scale`/`zero` are per column ([rows, count])."""
    codes = torch.zeros_like(w1)
    deq = torch.zeros_like(w1)
    err = torch.zeros_like(w1)
    losses = torch.zeros_like(w1)
    w1 = w1.clone()
    for i in range(w1.shape[1]):
        q, d, e, loss, tail = step(w1[:, i:], hinv1[i, i:], scale[:, i], zero[:, i], qmin, qmax)
        w1[:, i:] = tail
        codes[:, i], deq[:, i], err[:, i], losses[:, i] = q, d, e, loss
    return codes, deq, err, losses


@dataclass
class GptqResult:
    codes: torch.Tensor  # integer codes, [rows, cols], in the weight's column order
    dequantized: torch.Tensor  # what the quantized layer computes with
    scale: torch.Tensor
    zero: torch.Tensor
    loss: float  # GPTQ's own loss (sum over rows of the weighted squared error / 2)
    used_rtn_fallback: bool  # the Hessian could not be inverted: round-to-nearest


def inverse_hessian_factor(hessian: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, bool]:
    """Upper Cholesky factor of the damped Hessian's inverse, or (identity, True) when the
    Hessian is not positive definite (upstream's round-to-nearest fallback)."""
    h = hessian.clone()
    idx = torch.arange(h.shape[0], device=h.device)
    h[idx, idx] += percdamp * torch.mean(torch.diag(h))
    try:
        factor = torch.linalg.cholesky(h)
        return torch.linalg.cholesky(torch.cholesky_inverse(factor), upper=True), False
    except torch.linalg.LinAlgError:
        return torch.eye(h.shape[0], dtype=h.dtype, device=h.device), True


def gptq(weight: torch.Tensor, hessian: torch.Tensor, scheme: Scheme, *, blocksize: int = 128,
         percdamp: float = 0.01, actorder: bool = False,
         block_fn: Callable = process_block) -> GptqResult:
    """Quantize `weight` [rows, cols] with the calibration Hessian [cols, cols]."""
    w = weight.to(torch.float32).clone()
    h = hessian.to(torch.float32).clone()
    rows, cols = w.shape
    scale, zero = group_qparams(w, scheme)
    g_idx = torch.arange(cols, device=w.device) // scheme.group_size

    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    perm = None
    if actorder:
        perm = torch.argsort(torch.diag(h), descending=True)
        w, h, g_idx = w[:, perm], h[perm][:, perm], g_idx[perm]
    hinv, fallback = inverse_hessian_factor(h, percdamp)

    col_scale, col_zero = scale[:, g_idx], zero[:, g_idx]
    codes = torch.zeros_like(w)
    deq = torch.zeros_like(w)
    losses = torch.zeros(rows, device=w.device)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        q1, d1, err1, losses1 = block_fn(w[:, i1:i2], hinv[i1:i2, i1:i2],
                                         col_scale[:, i1:i2], col_zero[:, i1:i2],
                                         scheme.qmin, scheme.qmax)
        codes[:, i1:i2], deq[:, i1:i2] = q1, d1
        losses += losses1.sum(1) / 2
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    if perm is not None:
        inv = torch.argsort(perm)
        codes, deq = codes[:, inv], deq[:, inv]
    return GptqResult(codes.to(torch.int32), deq, scale, zero, float(losses.sum()), fallback)


def round_to_nearest(weight: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """Dequantized RTN weight with the same scales: the baseline GPTQ must beat."""
    scale, zero = group_qparams(weight.float(), scheme)
    g_idx = torch.arange(weight.shape[1], device=weight.device) // scheme.group_size
    return quantize(weight.float(), scale[:, g_idx], zero[:, g_idx], scheme.qmin, scheme.qmax)[1]


# ----------------------------------------------------------------------------- inputs


@dataclass
class ActivationModel:
    """Activations shaped like an LLM's: per-column scales spread over two orders of magnitude,
    a few heavy outlier columns, correlated columns (a low-rank shared part) and a few dead,
    always-zero columns. Calibration and held-out samples come from one model."""

    col_scale: torch.Tensor  # [cols]
    mix: torch.Tensor  # [rank, cols]

    @classmethod
    def make(cls, cols: int, seed: int, device="cpu", dead_fraction: float = 0.01):
        g = torch.Generator(device=device).manual_seed(seed)
        col_scale = torch.exp(torch.randn(cols, generator=g, device=device))
        heavy = torch.randperm(cols, generator=g, device=device)[: max(1, cols // 64)]
        col_scale[heavy] *= 20
        dead = torch.randperm(cols, generator=g, device=device)[
            : max(1, int(cols * dead_fraction))]
        col_scale[dead] = 0
        rank = max(4, cols // 32)
        mix = torch.randn(rank, cols, generator=g, device=device) / rank**0.5
        return cls(col_scale, mix)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator(device=self.mix.device).manual_seed(seed)
        cols, rank = self.col_scale.shape[0], self.mix.shape[0]
        z = torch.randn(n, cols, generator=g, device=self.mix.device)
        shared = torch.randn(n, rank, generator=g, device=self.mix.device) @ self.mix
        return (z + 2 * shared) * self.col_scale


def hessian_of(activations: torch.Tensor) -> torch.Tensor:
    """2 X^T X / n, as upstream accumulates it (sqrt(2) x inputs, averaged over samples)."""
    x = activations.to(torch.float32)
    return 2 * x.T @ x / x.shape[0]


def relative_output_error(weight: torch.Tensor, quantized: torch.Tensor,
                          activations: torch.Tensor) -> float:
    """||W X - Q X|| / ||W X|| on (held-out) activations X [n, cols]."""
    ref = activations.double() @ weight.double().T
    out = activations.double() @ quantized.double().T
    return float((ref - out).norm() / ref.norm())


@dataclass
class GptqCase(Case):
    """One layer and scheme, quantized by the variant: a call quantizes the whole layer once
    and returns the dequantized weight (it takes no inputs: the weight and Hessian are the
    case's)."""

    shape_name: str
    scheme: Scheme
    blocksize: int
    variant: str
    device: torch.device
    weight: torch.Tensor
    hessian: torch.Tensor
    held_out: torch.Tensor
    quantize: Callable[[], torch.Tensor]  # runs the variant once; returns the dequantized weight
    compiled_code: object | None  # code object dynamo compiles, for compile health

    input_sets = ((),)
    device_method = DEVICE_METHOD

    def call(self) -> torch.Tensor:
        return self.quantize()

    def eager_result(self) -> GptqResult:
        return gptq(self.weight, self.hessian, self.scheme, blocksize=self.blocksize)

    def quality(self, dequantized: torch.Tensor, eager: GptqResult) -> Quality:
        """A variant's output against the eager reference, on the held-out activations."""
        return Quality(
            # Every variant dequantizes with the same per-group scale and zero point,
            # (q - zero) * scale with scale > 0: equal weights are equal integer codes.
            identical_codes=float((dequantized == eager.dequantized).float().mean()),
            output_error=relative_output_error(self.weight, dequantized, self.held_out),
            eager_output_error=relative_output_error(self.weight, eager.dequantized,
                                                     self.held_out),
        )


@dataclass(frozen=True)
class Quality:
    identical_codes: float  # fraction of integer codes identical to eager's
    output_error: float  # ||WX - QX|| / ||WX|| on held-out activations
    eager_output_error: float

    @property
    def worse_than_eager(self) -> bool:
        """Worse beyond the stated tolerance: flagged, never hidden."""
        return self.output_error > self.eager_output_error * (1 + QUALITY_TOLERANCE)


def build_case(shape: str, scheme: str, blocksize: str, variant: str, device="cpu",
               seed: int = 0) -> GptqCase:
    check_choices(PARAMS, {"shape": [shape], "scheme": [scheme], "blocksize": [blocksize],
                           "variant": [variant]}, where="gptq")
    s, sch, bs = SHAPES[shape], SCHEMES[scheme], int(blocksize)
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    weight = torch.randn(s.rows, s.cols, generator=g, device=device) * 0.02
    model = ActivationModel.make(s.cols, seed, device)
    hessian = hessian_of(model.sample(CALIBRATION_SAMPLES, seed + 1))
    held_out = model.sample(256, seed + 2)
    code = None
    if variant == "compile-block":
        block_fn = variants.apply_compile(COMPILE_MODE, process_block, device)
        code = process_block.__code__
    elif variant == "compile-column":
        block_fn = functools.partial(
            process_block, step=variants.apply_compile(COMPILE_MODE, column_step, device))
        code = column_step.__code__
    elif variant == "triton":
        check_triton(device)
        block_fn = triton_block
    else:
        block_fn = process_block
    if variant.startswith("llmcompressor"):
        upstream = llmcompressor_quantizer(group_qparams, eager=variant == "llmcompressor-eager")

        def run():
            return upstream(weight, hessian, sch, bs)
    else:
        def run():
            return gptq(weight, hessian, sch, blocksize=bs, block_fn=block_fn).dequantized
    return GptqCase(shape, sch, bs, variant, device, weight, hessian, held_out, run, code)


def prime_compile(shape: str, scheme: str, blocksize: str, variant: str, device: str) -> None:
    """Compile and run once (in a child process) to fill the on-disk compile cache."""
    build_case(shape, scheme, blocksize, variant, device).run()
