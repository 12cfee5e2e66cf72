"""The one vocabulary of compile modes, applied to a workload's plain eager function from
outside (gpt-fast's habit: the model is plain PyTorch; compile is applied at the call site
with its mode). Every `torch.compile` of a workload goes through `apply_compile`.

A variant name says how it is compiled, the same way in every workload:
- a mode of `COMPILE_MODES` ("compile", "compile-dynamic", "compile-max-autotune",
  "compile-reduce-overhead"): the whole function or module compiled so;
- "compile-<part>" (GPTQ's "compile-block", "compile-column"): one part compiled;
- "<transformation>-compile" (the VAE's "fp8-compile"): a library's transformation, then
  compiled;
- `SURGICAL`: only the tensor ops between a layer's library kernels compiled.
A workload lists which of these it offers, beside its own uncompiled variants (a fused
library kernel, a quantized form).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kernelwatch.errors import Unavailable

if TYPE_CHECKING:
    import torch

# mode -> torch.compile keyword arguments.
COMPILE_MODES: dict[str, dict] = {
    # Specialised per shape, as compiled once for a fixed shape: dynamic=False keeps dynamo
    # from turning the second shape it sees into a shape-generic kernel.
    "compile": {"dynamic": False},
    # The shape-generic kernel users get after an automatic-dynamic recompile.
    "compile-dynamic": {"dynamic": True},
    # Inductor's "max-autotune" also wraps the call in its own CUDA graphs; those would nest
    # inside the timer's graph capture, so the no-cudagraphs mode is used. Kernel choice is
    # the same.
    "compile-max-autotune": {"dynamic": False, "mode": "max-autotune-no-cudagraphs"},
    # Inductor's own CUDA graphs: the call replayed from graphs it records.
    "compile-reduce-overhead": {"dynamic": False, "mode": "reduce-overhead"},
}

GPU_ONLY = {
    "compile-max-autotune": "max-autotune tunes GPU (Triton) kernel configs; on a CPU it "
    "only adds compile time",
    "compile-reduce-overhead": "reduce-overhead replays CUDA graphs; on a CPU it is compile",
}

SURGICAL = "surgical"


def apply_compile(mode: str, fn: Callable, device: torch.device | str, *,
                  fullgraph: bool = False) -> Callable:
    """Return `fn` compiled in `mode` (lazy: compiling happens at first call); Unavailable
    where the mode needs a GPU this device is not. `fullgraph`: fail on a graph break
    rather than run the rest eagerly."""
    import torch  # the names above are read by declarations that must not import torch

    if mode in GPU_ONLY and torch.device(device).type != "cuda":
        raise Unavailable(f"{mode} needs a CUDA GPU: {GPU_ONLY[mode]}")
    return torch.compile(fn, fullgraph=fullgraph, **COMPILE_MODES[mode])


def is_compiled(variant: str) -> bool:
    """Whether any of the variant runs code torch.compile made (the names above)."""
    return "compile" in variant.split("-") or variant == SURGICAL
