"""llm-compressor's GPTQ (gptq's `llmcompressor` variants), and whether the installed
release may be trusted in this environment."""

from __future__ import annotations

import os
from collections.abc import Callable

from kernelwatch.errors import Unavailable


def pin_mismatch(dist: str, installed: dict[str, str] | None = None) -> str | None:
    """Why `dist` should not be trusted here, or None: an installed torch or transformers
    outside the range its metadata declares (pip enforces that at install time only; an
    environment whose torch was swapped afterwards still imports it)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    problems = []
    for line in metadata.requires(dist) or ():
        req = Requirement(line)
        if req.name not in ("torch", "transformers") or req.marker is not None:
            continue
        try:
            version = (installed or {}).get(req.name) or metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name} is not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} is outside its pin {req.specifier}")
    if problems:
        return (f"{dist} {metadata.version(dist)} is not for this environment: "
                + "; ".join(problems))
    return None


def llmcompressor_quantizer(group_qparams: Callable, *, eager: bool) -> Callable:
    """llm-compressor's `quantize_weight` as a function of (weight, hessian, scheme,
    blocksize) returning the dequantized weight, with the scales and zero points of
    `group_qparams` (gptq's observer, so both sides quantize to the same grid); `eager`
    forces its eager loop over its Triton kernel."""
    try:
        from compressed_tensors.quantization import QuantizationArgs
        from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight
    except ImportError as exc:
        raise Unavailable(
            f"llmcompressor does not import here ({exc}); it needs torch >=2.10,<=2.14.0 "
            "and transformers >=5.15,<=5.17: pip install 'kernelwatch[gptq]'"
        ) from exc
    problem = pin_mismatch("llmcompressor")
    if problem:
        raise Unavailable(problem)

    def run(weight, hessian, scheme, blocksize, percdamp=0.01):
        # Read by llm-compressor at call time: "1" forces its eager loop over its Triton kernel.
        os.environ["LLMCOMPRESSOR_DISABLE_GPTQ_TRITON"] = "1" if eager else "0"
        args = QuantizationArgs(num_bits=scheme.bits, type="int", symmetric=scheme.symmetric,
                                strategy="group", group_size=scheme.group_size)
        scale, zero = group_qparams(weight.float(), scheme)
        out = quantize_weight(weight[None].clone(), hessian[None].clone(), scale[None],
                              zero[None], None, args, blocksize=blocksize, percdamp=percdamp)
        return out[0][0]  # dequantized weight

    return run
