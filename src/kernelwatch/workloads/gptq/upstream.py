"""llm-compressor's GPTQ (gptq's `llmcompressor` variants) across the library's history, and
whether the installed copy may be trusted in this environment.

`quantize_weight` changed its form four times; the adapter reads the installed form off the
function itself (its module path and `inspect.signature`) and calls it so that every form
quantizes the same weight with the same Hessian, scheme and block size:

- `batched` (0.14.0 on, `modifiers.gptq.gptq_quantize`): `(weights[B,R,C], hessians[B,C,C],
  scale, zero_point, global_scale, args, ...)` -> `(Wq, losses, fallback)`;
- `module-observer` (0.11.0-0.13.x, `modifiers.gptq.gptq_quantize`): `(module, args,
  hessian, ...)`, the scales from `module.weight_observer.get_qparams()` -> `(loss,
  {"weight": Wq, ...})`;
- `module-registry` (0.10.x, `modifiers.quantization.gptq.gptq_quantize`, and
  `modifiers.gptq` for a while after 0.10.0): `(module, args, hessian, ...)`, the library's
  own min/max observer -> `(loss, {"weight": Wq, ...})`;
- `module-dict` (0.4.0-0.9.x, `modifiers.quantization.gptq[.utils].gptq_quantize`):
  `(module, args, {module: hessian}, ...)`, its own observer -> `(loss, Wq, scale,
  zero_point, g_idx)`.

Before 0.4.0 GPTQ is `GPTQWrapper`, a module wrapper fed by forward hooks, with no function
of a weight and a Hessian to call: not measurable. In the two newest forms the scales and
zero points are gptq's own observer's (the caller passes them), so codes are comparable with
the project's eager GPTQ bit for bit; in the two older ones the library's observer computes
them from the same weight with the same min/max rule: identical codes from 0.9.0 on; in 0.4.0
compressed-tensors 0.9's asymmetric zero points differ in about 4% of the codes, the output
error within 0.1% of eager's (tests/test_gptq_upstream.py checks each form against the
project's eager GPTQ).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

from kernelwatch.errors import Unavailable
from kernelwatch.workloads.gptq.spec import LIBRARIES

# The releases followed, what is said below them, and the names builds went by: the
# workload's declaration (spec.LIBRARIES), which the engine reads without importing this.
LLMCOMPRESSOR = LIBRARIES["llmcompressor"]
# Where quantize_weight lived, newest first: 0.11 moved it out of `quantization`, 0.5 out of
# `utils`.
MODULES = ("llmcompressor.modifiers.gptq.gptq_quantize",
           "llmcompressor.modifiers.quantization.gptq.gptq_quantize",
           "llmcompressor.modifiers.quantization.gptq.utils.gptq_quantize")
WRAPPER_MODULE = "llmcompressor.modifiers.quantization.gptq.utils.gptq_wrapper"
# A requirement of llm-compressor that kernelwatch keeps fixed across a history (asv's matrix
# axis, recorded in every result): outside the library's pin it is measured anyway, said in
# the benchmark's output, never skipped.
FIXED = ("torch",)


@dataclass(frozen=True)
class Form:
    """One form of quantize_weight: its name and how the installed function is called."""

    name: str
    releases: str
    function: Callable


def installed_name(dist: str) -> str:
    """The name `dist` is installed under here: its own, or one of its BUILD_NAMES (0.4.0's
    build is `llmcompressor-dev`)."""
    from importlib import metadata

    for name in (dist, *(LIBRARIES[dist].build_names if dist in LIBRARIES else ())):
        try:
            metadata.version(name)
            return name
        except metadata.PackageNotFoundError:
            continue
    return dist


def pin_mismatch(dist: str, installed: dict[str, str] | None = None,
                 fixed: tuple[str, ...] = ()) -> str | None:
    """Why `dist` should not be trusted here, or None: an installed requirement of it
    (torch, transformers, compressed-tensors ...) missing or outside the range its metadata
    declares (pip enforces that at install time only; an environment changed afterwards
    still imports it). Requirements named in `fixed` are the run's own axis: not checked."""
    from importlib import metadata

    from packaging.requirements import Requirement

    problems = []
    dist = installed_name(dist)
    for line in metadata.requires(dist) or ():
        req = Requirement(line)
        if req.name in fixed or (req.marker is not None
                                 and not req.marker.evaluate({"extra": ""})):
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


def installed_form() -> Form:
    """The installed quantize_weight and its form; Unavailable naming why where none can be
    called (not installed, does not import, a form before 0.4.0)."""
    try:
        importlib.import_module("llmcompressor")
    except ImportError as exc:
        raise Unavailable(
            f"llmcompressor does not import here ({exc}); in a `--target` or `--versions` "
            "environment its requirements are the newest its commit's day allowed "
            "(docs/libraries.md), elsewhere `pip install 'kernelwatch[gptq]'` installs the "
            "newest release") from exc
    errors = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and not name.startswith(exc.name):
                errors.append(f"{name}: {exc}")  # the module is there; a dependency is not
            continue
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        function = getattr(module, "quantize_weight", None)
        if function is not None:
            return form_of(function)
    if errors:
        raise Unavailable(f"llmcompressor's GPTQ does not import here: {'; '.join(errors)}")
    try:
        importlib.import_module(WRAPPER_MODULE)
        found = "it has GPTQWrapper"
    except ImportError:
        found = "it has no quantize_weight in " + ", ".join(MODULES)
    raise Unavailable(f"llmcompressor is not measurable before 0.4.0 ({found}): "
                      f"{LLMCOMPRESSOR.why_not_before}")


def form_of(function: Callable) -> Form:
    """The form of a quantize_weight function, by its parameters and what it reads."""
    names = list(inspect.signature(function).parameters)
    if names[:2] == ["weights", "hessians"]:
        return Form("batched", "0.14.0 on", function)
    if names[:1] == ["module"] and names[2:3] == ["hessians_dict"]:
        return Form("module-dict", "0.4.0-0.9.x", function)
    if names[:1] == ["module"] and names[2:3] == ["hessian"]:
        source = inspect.getsource(function)
        if "module.weight_observer" in source:
            return Form("module-observer", "0.11.0-0.13.x", function)
        return Form("module-registry", "0.10.x", function)
    raise Unavailable(f"llmcompressor's quantize_weight{inspect.signature(function)} is a form "
                      "this adapter does not know (known: batched, module-observer, "
                      "module-registry, module-dict): add it to _gptq_upstream.py")


class _CallersQparams:
    """The `weight_observer` a quantized module carries (0.11-0.13): the scales and zero
    points of the caller's observer, as 0.14 takes them as arguments. Activation ordering by
    group (which re-observes a permuted weight) is never asked for here."""

    def __init__(self, scale, zero_point) -> None:
        self.qparams = {"scale": scale, "zero_point": zero_point, "global_scale": None}

    def get_qparams(self) -> dict:
        return dict(self.qparams)


def llmcompressor_quantizer(group_qparams: Callable, *, eager: bool,
                            form: Form | None = None) -> Callable:
    """llm-compressor's `quantize_weight` as a function of (weight, hessian, scheme,
    blocksize) returning the dequantized weight, with the scales and zero points of
    `group_qparams` (gptq's observer, so both sides quantize to the same grid) where the
    form takes them from the caller; `eager` forces its eager loop over its Triton kernel
    (0.14 on; before, the eager loop is its only one). `form` is a quantize_weight found
    elsewhere (a release's sources, in the tests); by default the installed one, checked
    against the requirements it declares."""
    if form is None:
        form = installed_form()
        problem = pin_mismatch("llmcompressor", fixed=FIXED)
        if problem:
            raise Unavailable(problem)
        outside = pin_mismatch("llmcompressor")
    else:
        outside = None
    from compressed_tensors.quantization import QuantizationArgs

    if outside:
        import sys

        print(f"kernelwatch: measured anyway, {', '.join(FIXED)} being the run's fixed axis: "
              f"{outside}", file=sys.stderr)

    def run(weight, hessian, scheme, blocksize, percdamp=0.01):
        import torch

        # Read by llm-compressor at call time: "1" forces its eager loop over its Triton kernel.
        os.environ["LLMCOMPRESSOR_DISABLE_GPTQ_TRITON"] = "1" if eager else "0"
        args = QuantizationArgs(num_bits=scheme.bits, type="int", symmetric=scheme.symmetric,
                                strategy="group", group_size=scheme.group_size)
        if form.name == "batched":
            scale, zero = group_qparams(weight.float(), scheme)
            out = form.function(weight[None].clone(), hessian[None].clone(), scale[None],
                                zero[None], None, args, blocksize=blocksize, percdamp=percdamp)
            return out[0][0]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False,
                                 device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
        if form.name == "module-observer":
            linear.weight_observer = _CallersQparams(*group_qparams(weight.float(), scheme))
        # Every form before 0.14 inverts the Hessian in place.
        h = hessian.clone()
        hessians = {linear: h} if form.name == "module-dict" else h
        out = form.function(linear, args, hessians, blocksize=blocksize, percdamp=percdamp)
        quantized = out[1]["weight"] if isinstance(out[1], dict) else out[1]
        return quantized.reshape(weight.shape).to(weight.dtype)

    return run
