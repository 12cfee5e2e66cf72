"""GPTQ's column loop over one block as one fused Triton kernel (gptq's `triton` variant):
each program keeps a tile of rows x block columns in registers and walks the columns, so the
block costs one launch instead of about ten kernels per column."""

from __future__ import annotations

import os

import torch

from kernelwatch.errors import KernelwatchError, Unavailable

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the `triton` variant is skipped with the reason
    triton = None


if triton is not None:

    @triton.jit
    def _gptq_block_kernel(w_ptr, hinv_ptr, scale_ptr, zero_ptr, codes_ptr, deq_ptr, err_ptr,
                           loss_ptr, rows, stride_w, stride_h, stride_s, stride_o,
                           qmin, qmax, WIDTH: tl.constexpr, BLOCK_ROWS: tl.constexpr):
        r = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        c = tl.arange(0, WIDTH)
        rmask = r < rows
        tile = tl.load(w_ptr + r[:, None] * stride_w + c[None, :], mask=rmask[:, None],
                       other=0.0)
        for i in range(0, WIDTH):
            # The column as a vector: a masked row sum adds only zeros to it, so it is exact.
            w = tl.sum(tl.where(c[None, :] == i, tile, 0.0), axis=1)
            scale = tl.load(scale_ptr + r * stride_s + i, mask=rmask, other=1.0)
            zero = tl.load(zero_ptr + r * stride_s + i, mask=rmask, other=0.0)
            # Same operations, same order as `column_step`, IEEE division (div_rn), and no
            # fused multiply-add (launched with enable_fp_fusion=False): bit-identical codes.
            # Round half to even as torch.round does: adding and subtracting 1.5 * 2**23 leaves
            # no fraction bits (exact below 2**22; larger values are clamped away anyway).
            # Plain arithmetic, not libdevice.rint, so the Triton interpreter runs it too.
            x = tl.div_rn(w, scale)
            q = tl.clamp((x + 12582912.0) - 12582912.0 + zero, qmin, qmax)
            deq = (q - zero) * scale
            d = tl.load(hinv_ptr + i * stride_h + i)
            diff = w - deq
            err = tl.div_rn(diff, d)
            out = r * stride_o + i
            tl.store(codes_ptr + out, q, mask=rmask)
            tl.store(deq_ptr + out, deq, mask=rmask)
            tl.store(err_ptr + out, err, mask=rmask)
            tl.store(loss_ptr + out, tl.div_rn(diff * diff, d * d), mask=rmask)
            h = tl.load(hinv_ptr + i * stride_h + c)
            tile = tl.where(c[None, :] > i, tile - err[:, None] * h[None, :], tile)


TRITON_BLOCK_ROWS = 16  # rows per program: 16 x 128 fp32 is 16 registers a thread at 4 warps


def triton_block(w1: torch.Tensor, hinv1: torch.Tensor, scale: torch.Tensor,
                 zero: torch.Tensor, qmin: int, qmax: int):
    """`process_block` as one fused Triton kernel launch (CUDA; or the Triton interpreter on
    CPU tensors with TRITON_INTERPRET=1, which tests run)."""
    rows, width = w1.shape
    if width & (width - 1):
        raise KernelwatchError(f"the Triton block kernel needs a power-of-two block, not {width}")
    # Row strides are passed; columns must be unit-stride (slices of row-major tensors are).
    w1, hinv1 = (t if t.stride(1) == 1 else t.contiguous() for t in (w1, hinv1))
    outs = [torch.empty(rows, width, device=w1.device, dtype=torch.float32) for _ in range(4)]
    scale, zero = scale.contiguous(), zero.contiguous()
    grid = (triton.cdiv(rows, TRITON_BLOCK_ROWS),)
    _gptq_block_kernel[grid](
        w1, hinv1, scale, zero, *outs, rows, w1.stride(0), hinv1.stride(0),
        scale.stride(0), width, float(qmin), float(qmax), WIDTH=width,
        BLOCK_ROWS=TRITON_BLOCK_ROWS,
        num_warps=4, enable_fp_fusion=False)
    return tuple(outs)


def check_triton(device: torch.device | str) -> None:
    if triton is None:
        raise Unavailable("triton is not installed (it comes with CUDA builds of torch)")
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if torch.device(device).type != "cuda" and not interpreted:
        raise Unavailable("the fused Triton kernel needs a CUDA GPU "
                          "(TRITON_INTERPRET=1 runs it on the CPU, slowly, for tests)")
