"""RoPE's library kernels across their releases: TransformerEngine's fused RoPE (`te-fused`)
and Liger Kernel's (`liger`), and the releases each adapter can call.

TransformerEngine's `apply_rotary_pos_emb(t, freqs, tensor_format, ..., fused=True)` kept its
call and moved twice (read from each release's wheel):
- 2.3.0 on: `transformer_engine.pytorch.attention.rope`, with `interleaved=` (both forms);
- 2.2.x: `transformer_engine.pytorch.dot_product_attention.rope`, rotate-half only;
- 1.13.0-2.1.x: `transformer_engine.pytorch.attention` (one module), rotate-half only.
Liger Kernel's `LigerRopeFunction.apply(q, k, cos, sin)` (`liger_kernel.ops.rope`) is the same
call from its first release (0.1.0) to 0.8.5; later releases added optional arguments only.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable

from kernelwatch.errors import Unavailable

# The releases these adapters follow: the workload's declaration (spec.LIBRARIES).
# Where TransformerEngine kept apply_rotary_pos_emb, newest first.
TE_MODULES = ("transformer_engine.pytorch.attention.rope",
              "transformer_engine.pytorch.dot_product_attention.rope",
              "transformer_engine.pytorch.attention")


def te_apply_rotary_pos_emb(interleaved: bool) -> Callable:
    """TransformerEngine's apply_rotary_pos_emb of the installed release, called as
    `f(t, freqs, tensor_format=..., fused=True)` (with `interleaved=` where the form asks
    for it); Unavailable naming why where it cannot run the form."""
    errors = []
    for name in TE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        function = getattr(module, "apply_rotary_pos_emb", None)
        if function is None:
            continue
        takes = inspect.signature(function).parameters
        if interleaved and "interleaved" not in takes:
            raise Unavailable("te-fused's interleaved form needs TransformerEngine 2.3.0 or "
                              "later (apply_rotary_pos_emb takes `interleaved` from 2.3.0)")
        return functools.partial(function, interleaved=True) if interleaved else function
    raise Unavailable(
        f"te-fused needs transformer_engine, which does not import here ({'; '.join(errors)}"
        "); install it with `pip install kernelwatch[te]` on a machine with nvcc and cuDNN")
