"""The project's reference RoPE kernel (rope's `triton` variant): one Triton launch for q
and k together, each program reading the cos/sin rows of its positions once and applying
them to every head of q and k there, in fp32 with one rounding per output."""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kernelwatch.errors import Unavailable

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the `triton` variant is skipped with the reason
    triton = None

if triton is not None:

    @triton.jit
    def _rope_heads(x_ptr, out_ptr, cos1, sin1, cos2, sin2, b, h_first, s_offs, s_mask,
                    d_offs, d_mask, sxb, sxh, sxs, sob, soh, sos, H_TOTAL: tl.constexpr,
                    HEADS: tl.constexpr, HB: tl.constexpr, HALF: tl.constexpr,
                    BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, INTERLEAVED: tl.constexpr):
        """Rotate HEADS heads of one tensor from h_first on (of H_TOTAL) at the program's
        positions, HB heads a step. Rotate-half: d_offs index a half row (x1 at d, x2 at
        d + HALF); interleaved: whole rows are loaded and stored contiguously and split into
        the pairs (x[2p], x[2p+1]) in registers (strided loads of the even and odd elements
        ran at 6% of the copy bandwidth)."""
        h_offs = tl.arange(0, HB)
        for h0 in tl.static_range(0, HEADS, HB):
            h = h_first + h0 + h_offs
            rows = ((h0 + h_offs < HEADS) & (h < H_TOTAL))[:, None, None] & s_mask[None, :, None]
            x_row = (x_ptr + b * sxb + h[:, None, None] * sxh + s_offs[None, :, None] * sxs)
            o_row = (out_ptr + b * sob + h[:, None, None] * soh + s_offs[None, :, None] * sos)
            if INTERLEAVED:
                d2 = tl.arange(0, 2 * BLOCK_D)[None, None, :]
                mask = rows & (d2 < 2 * HALF)
                x = tl.load(x_row + d2, mask=mask).to(tl.float32)
                even, odd = tl.split(tl.reshape(x, (HB, BLOCK_S, BLOCK_D, 2)))
                y = tl.join(even * cos1 - odd * sin1, even * sin1 + odd * cos1)
                tl.store(o_row + d2, tl.reshape(y, (HB, BLOCK_S, 2 * BLOCK_D)).to(
                    out_ptr.dtype.element_ty), mask=mask)
            else:
                d = d_offs[None, None, :]
                mask = rows & d_mask[None, None, :]
                x1 = tl.load(x_row + d, mask=mask).to(tl.float32)
                x2 = tl.load(x_row + d + HALF, mask=mask).to(tl.float32)
                tl.store(o_row + d, (x1 * cos1 - x2 * sin1).to(out_ptr.dtype.element_ty),
                         mask=mask)
                tl.store(o_row + d + HALF, (x2 * cos2 + x1 * sin2).to(out_ptr.dtype.element_ty),
                         mask=mask)

    @triton.jit
    def _rope_qk_kernel(q_ptr, k_ptr, qo_ptr, ko_ptr, cos_ptr, sin_ptr, S,
                        sqb, sqh, sqs, skb, skh, sks, sqob, sqoh, sqos, skob, skoh, skos,
                        scb, scs, Q_HEADS: tl.constexpr, K_HEADS: tl.constexpr,
                        HALF: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                        HB_Q: tl.constexpr, HB_K: tl.constexpr, Q_GROUP: tl.constexpr,
                        K_GROUP: tl.constexpr, INTERLEAVED: tl.constexpr):
        """One program: BLOCK_S positions of one batch row, and one group of heads: Q_GROUP
        heads of q and K_GROUP of k (every head where there is one group). The cos/sin rows
        of those positions are read once, before the heads; with several groups each group's
        program reads them again, from L2."""
        b = tl.program_id(1)
        group = tl.program_id(2)
        s_offs = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
        s_mask = s_offs < S
        d_offs = tl.arange(0, BLOCK_D)
        d_mask = d_offs < HALF
        t_mask = s_mask[:, None] & d_mask[None, :]
        t_row = b * scb + s_offs[:, None] * scs + d_offs[None, :]
        cos1 = tl.load(cos_ptr + t_row, mask=t_mask).to(tl.float32)[None, :, :]
        sin1 = tl.load(sin_ptr + t_row, mask=t_mask).to(tl.float32)[None, :, :]
        if INTERLEAVED:
            cos2, sin2 = cos1, sin1
        else:
            # HF's tables hold both halves; each is read, so any table gives HF's result.
            cos2 = tl.load(cos_ptr + t_row + HALF, mask=t_mask).to(tl.float32)[None, :, :]
            sin2 = tl.load(sin_ptr + t_row + HALF, mask=t_mask).to(tl.float32)[None, :, :]
        _rope_heads(q_ptr, qo_ptr, cos1, sin1, cos2, sin2, b, group * Q_GROUP, s_offs, s_mask,
                    d_offs, d_mask, sqb, sqh, sqs, sqob, sqoh, sqos, Q_HEADS, Q_GROUP, HB_Q,
                    HALF, BLOCK_S, BLOCK_D, INTERLEAVED)
        _rope_heads(k_ptr, ko_ptr, cos1, sin1, cos2, sin2, b, group * K_GROUP, s_offs, s_mask,
                    d_offs, d_mask, skb, skh, sks, skob, skoh, skos, K_HEADS, K_GROUP, HB_K,
                    HALF, BLOCK_S, BLOCK_D, INTERLEAVED)


# Elements of x a program step holds (HB heads x BLOCK_S positions x a half row), its warps,
# and the programs per SM the positions per program are cut down to. Picked on the H200 by
# scripts/rope_triton_tune.py (bf16, the three Llama shapes): 8192 / 8 / 8 was within 3% of
# the best configuration tried on every shape and form; 2048 / 4 / 4 left the 8B rotate-half
# shape at 58% of the copy bandwidth: at 133 registers a thread an SM holds three of its
# 4-warp programs, too few loads in flight (`resource_usage`, docs/findings/rope-gpu.md). From
# 24 resident warps up, the shapes read 75-86% whatever the occupancy.
TRITON_STEP_ELEMENTS = 8192
TRITON_NUM_WARPS = 8
TRITON_PROGRAMS_PER_SM = 8
# Groups the heads are split into, a program per group (1: every head in one program, the
# tables read once per position). More groups mean smaller programs, more of them resident
# per SM and more loads in flight (the steps within a program wait on each other's stores:
# q and its output may alias for all Triton knows), for the tables read again from L2.
TRITON_HEAD_GROUPS = 1


def _triton_config(batch: int, seq_len: int, half: int, groups: int, step_elements: int,
                   programs_per_sm: int) -> tuple[int, int, int]:
    """(BLOCK_S, BLOCK_D, HB): positions per program, the padded half row, heads a step.
    Positions per program shrink until there are `programs_per_sm` programs per SM (132 SMs
    on an H100/H200): the 8B shape has one batch row of 2048 positions."""
    block_d = triton.next_power_of_2(half)
    block_s = 16
    while block_s > 1 and batch * triton.cdiv(seq_len, block_s) * groups < programs_per_sm * 132:
        block_s //= 2
    hb = triton.next_power_of_2(max(1, step_elements // (block_s * block_d)))
    return block_s, block_d, hb


def rope_triton(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
                interleaved: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE of q [B, H, S, D] and k [B, KV, S, D] in one launch; cos/sin [B, S, D] for
    rotate-half, [B, S, D/2] for interleaved. Any strides except a unit last one; new
    outputs of q's and k's dtype."""
    qo, ko, _ = launch(q, k, cos, sin, interleaved=interleaved)
    return qo, ko


def launch_params(batch: int, q_heads: int, kv_heads: int, seq_len: int, half: int, *,
                  interleaved: bool) -> tuple[tuple[int, int, int], dict[str, int | bool]]:
    """The grid and the kernel's compile-time parameters (num_warps among them) for q
    [batch, q_heads, seq_len, 2 * half] and k with kv_heads, from the TRITON_* settings."""
    grid, params = _launch_params(batch, q_heads, kv_heads, seq_len, half, interleaved,
                                  TRITON_STEP_ELEMENTS, TRITON_NUM_WARPS,
                                  TRITON_PROGRAMS_PER_SM, TRITON_HEAD_GROUPS)
    return grid, dict(params)


# Cached: uncached, this arithmetic took 23-36 us a call on this project's 2-core CPU, paid by
# every caller beside the launch itself; the TRITON_* settings are part of the key.
@functools.lru_cache(maxsize=256)
def _launch_params(batch: int, q_heads: int, kv_heads: int, seq_len: int, half: int,
                   interleaved: bool, step_elements: int, num_warps: int, programs_per_sm: int,
                   head_groups: int) -> tuple[tuple[int, int, int], dict[str, int | bool]]:
    groups = max(1, min(head_groups, kv_heads))
    q_group, k_group = triton.cdiv(q_heads, groups), triton.cdiv(kv_heads, groups)
    block_s, block_d, hb = _triton_config(batch, seq_len, half, groups, step_elements,
                                          programs_per_sm)
    grid = (triton.cdiv(seq_len, block_s), batch, groups)
    return grid, dict(Q_HEADS=q_heads, K_HEADS=kv_heads, HALF=half, BLOCK_S=block_s,
                      BLOCK_D=block_d, HB_Q=min(hb, triton.next_power_of_2(q_group)),
                      HB_K=min(hb, triton.next_power_of_2(k_group)), Q_GROUP=q_group,
                      K_GROUP=k_group, INTERLEAVED=interleaved, num_warps=num_warps)


def launch(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
           interleaved: bool) -> tuple[torch.Tensor, torch.Tensor, object]:
    """rope_triton's outputs and the compiled kernel it launched (its `n_regs` and
    `n_spills` say how many programs fit on an SM: scripts/rope_triton_tune.py prints
    them)."""
    b, hq, s, d = q.shape
    for t in (q, k, cos, sin):
        if t.stride(-1) != 1:
            raise ValueError("rope_triton needs the last dimension contiguous")
    if cos.stride() != sin.stride() or cos.shape[-1] != (d // 2 if interleaved else d):
        raise ValueError("cos and sin must share one layout of the form's table width")
    qo, ko = torch.empty_like(q), torch.empty_like(k)
    grid, params = launch_params(b, hq, k.shape[1], s, d // 2, interleaved=interleaved)
    compiled = _rope_qk_kernel[grid](
        q, k, qo, ko, cos, sin, s,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        qo.stride(0), qo.stride(1), qo.stride(2), ko.stride(0), ko.stride(1), ko.stride(2),
        cos.stride(0), cos.stride(1), **params)
    return qo, ko, compiled


# What a register-limited SM of an H100 / H200 holds: 64K 32-bit registers, 64 warps.
REGISTERS_PER_SM = 65536
WARPS_PER_SM = 64


@dataclass(frozen=True)
class ResourceUsage:
    """What ptxas gave one thread of the kernel, and what that leaves an SM holding."""

    registers: int
    spill_bytes: int  # local memory a thread spills to
    shared_bytes: int
    num_warps: int

    @property
    def programs_per_sm(self) -> int:
        by_registers = REGISTERS_PER_SM // max(1, self.registers * 32 * self.num_warps)
        return min(by_registers, WARPS_PER_SM // self.num_warps)


def resource_usage(batch: int, q_heads: int, kv_heads: int, seq_len: int, half: int, *,
                   interleaved: bool, dtype: str = "bf16", arch: int = 90) -> ResourceUsage:
    """Compile the kernel ahead of time for an sm_`arch` GPU, as `launch` would for these
    sizes (contiguous tensors: every pointer and stride divisible by 16, as Triton's launch
    specialises them), and read its registers, spills and shared memory off the cubin with
    cuobjdump. Needs no GPU: Triton's own ptxas builds the cubin on any machine."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    _, params = launch_params(batch, q_heads, kv_heads, seq_len, half, interleaved=interleaved)
    num_warps = params.pop("num_warps")
    fn = _rope_qk_kernel
    runtime = fn.arg_names[:fn.arg_names.index("Q_HEADS")]
    signature = {name: ("*" + dtype if name.endswith("_ptr") else "i32") for name in runtime}
    signature |= {name: "constexpr" for name in params}
    attrs = {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in runtime}
    compiled = triton.compile(ASTSource(fn, signature, constexprs=params, attrs=attrs),
                              target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps})
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "rope.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        out = subprocess.run([str(tool), "-res-usage", str(cubin)], capture_output=True,
                             text=True, check=True).stdout
    usage = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", out))
    return ResourceUsage(registers=int(usage["REG"]),
                         spill_bytes=int(usage["LOCAL"]) + int(usage["STACK"]),
                         shared_bytes=int(usage["SHARED"]), num_warps=num_warps)


def triton_variant(form: str, device: torch.device) -> Callable:
    if device.type != "cuda":
        raise Unavailable("triton needs a CUDA GPU (the project's reference RoPE kernel is "
                          "a Triton kernel)")
    if triton is None:
        raise Unavailable("triton is not installed (it comes with CUDA builds of torch)")
    interleaved = form == "interleaved"

    def triton_rope(q, k, cos, sin):
        return rope_triton(q, k, cos, sin, interleaved=interleaved)

    return triton_rope
