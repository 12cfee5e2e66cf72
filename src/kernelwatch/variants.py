"""Transformations applied to a workload's plain eager function from outside (gpt-fast's
habit: the model is plain PyTorch; compile is applied at the call site with its mode).

A workload lists which of these it offers, plus its own special variants (a fused library
kernel, a quantized form).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kernelwatch.errors import Unavailable

# name -> torch.compile keyword arguments.
COMPILE_VARIANTS: dict[str, dict] = {
    # Specialised per shape, as compiled once for a fixed shape: dynamic=False keeps dynamo
    # from turning the second shape it sees into a shape-generic kernel.
    "compile": {"dynamic": False},
    # The shape-generic kernel users get after an automatic-dynamic recompile.
    "compile-dynamic": {"dynamic": True},
    # Inductor's "max-autotune" also wraps the call in its own CUDA graphs; those would nest
    # inside the timer's graph capture, so the no-cudagraphs mode is used. Kernel choice is
    # the same.
    "compile-max-autotune": {"dynamic": False, "mode": "max-autotune-no-cudagraphs"},
}

GPU_ONLY = {
    "compile-max-autotune": "max-autotune tunes GPU (Triton) kernel configs; on a CPU it "
    "only adds compile time",
}


def apply_compile(variant: str, fn: Callable, device: torch.device) -> Callable:
    """Return `fn` compiled as `variant` describes (lazy: compiling happens at first call)."""
    if variant in GPU_ONLY and device.type != "cuda":
        raise Unavailable(f"{variant} needs a CUDA GPU: {GPU_ONLY[variant]}")
    return torch.compile(fn, **COMPILE_VARIANTS[variant])


def is_compiled(variant: str) -> bool:
    return variant in COMPILE_VARIANTS
