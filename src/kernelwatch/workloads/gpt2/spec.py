"""GPT-2 generate's declaration: greedy decoding of N new tokens after a fixed prompt, batch
1, by the four released sizes, in the variants case.py applies (fp32/bf16, INT8 by torch.ao
and torchao, ONNX Runtime, compiled). Bytes per decoded token: every weight is read once per
step, so the floor on a device is `model bytes / copy bandwidth` per token."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kernelwatch.errors import KernelwatchError
from kernelwatch.workloads.declaration import (
    CPU,
    CUDA,
    Library,
    SuitePart,
    Variant,
    Workload,
    variant_table,
)


@dataclass(frozen=True)
class Gpt2Size:
    n_layer: int
    n_embd: int
    n_head: int


# The four released GPT-2 sizes (their config.json); vocabulary 50257, context 1024.
SIZES: dict[str, Gpt2Size] = {
    "gpt2": Gpt2Size(12, 768, 12),  # 124M
    "gpt2-medium": Gpt2Size(24, 1024, 16),  # 355M
    "gpt2-large": Gpt2Size(36, 1280, 20),  # 774M
    "gpt2-xl": Gpt2Size(48, 1600, 25),  # 1.5B
}
VOCAB_SIZE = 50257
INIT_RANGE = 0.05
SEED = 0
# The write-up's prompt, "Once upon a time, there was a magical forest", as GPT-2 token ids
# (no tokenizer download); longer prompts continue with seeded random ids.
WRITEUP_PROMPT = (7454, 2402, 257, 640, 11, 612, 373, 257, 10883, 8222)

_TORCH_AO = "torch.ao dynamic quantization has CPU kernels only"
_ONNX = ("the ONNX variants use onnxruntime's CPU provider; on a GPU machine they would "
         "measure its host CPU")
# Every variant generates with transformers (a target of every case, below); ONNX Runtime
# and torchao run only their own variants.
VARIANTS = variant_table(
    Variant("fp32", CPU, "the GPU baseline is bf16"),
    Variant("bf16", CUDA, "bf16 is the GPU baseline; the CPU's is fp32"),
    Variant("int8-dynamic", CPU, _TORCH_AO),
    Variant("int8-dynamic-as-seed", CPU, _TORCH_AO),
    Variant("torchao-int8-weight-only", library="torchao"),
    Variant("torchao-int8-dynamic", library="torchao"),
    Variant("onnx-fp32", CPU, _ONNX, library="onnxruntime"),
    Variant("onnx-int8", CPU, _ONNX, library="onnxruntime"),
    Variant("compile"),
)
BASELINE = {"cpu": "fp32", "cuda": "bf16"}

# Strings: asv params match by repr, and the CLI selects by name. Threads: "all" is every
# core this process may use; 1 is the write-up's setting.
PARAMS = {"size": list(SIZES), "prompt_tokens": ["10", "128"], "new_tokens": ["100", "16"],
          "threads": ["1", "all"], "variant": list(VARIANTS)}
_GPU_XL = {"size": ["gpt2-xl"], "prompt_tokens": ["128"], "new_tokens": ["100"],
           "threads": ["1"]}
SUITES = {
    # The quick run (`make demo`: two commits x two torch versions): the one figure that
    # says whether INT8 pays, the decode step of fp32 and int8-dynamic over a short
    # generation. Every GPT-2 process loads transformers and a model (about 20 s here), so
    # each variant or metric more costs minutes there; ONNX, size and agreement are in the
    # tests and full runs.
    "quick": [SuitePart({"size": ["gpt2"], "prompt_tokens": ["10"], "new_tokens": ["16"],
                         "threads": ["1"], "variant": ["fp32", "int8-dynamic"]},
                        ("time",), ("decode_time",))],
    # On a GPU: GPT-2 XL's decode in bf16, weight-only INT8 (the fast path for batch-1
    # decode) and compiled, with the two's token match against bf16; bf16's time to first
    # token; the compile's first generation once. Each process loads the 1.5B model and a
    # compiled one compiles it (25-90 s on an H100), so bf16's match with itself (always 1)
    # and the other variants' time to first token are nightly's.
    "gpu-commit": [
        SuitePart({**_GPU_XL, "variant": ["bf16", "torchao-int8-weight-only", "compile"]},
                  ("time",), ("decode_time",)),
        SuitePart({**_GPU_XL, "variant": ["torchao-int8-weight-only", "compile"]},
                  ("accuracy",), ("token_match",)),
        SuitePart({**_GPU_XL, "variant": ["bf16"]}, ("time",), ("ttft",)),
        SuitePart({**_GPU_XL, "variant": ["compile"]}, ("first-run",)),
    ],
    "gpu-nightly": [
        SuitePart({**_GPU_XL, "variant": ["bf16", "torchao-int8-weight-only",
                                          "torchao-int8-dynamic", "compile"]},
                  ("time", "accuracy", "first-run", "size")),
    ],
}
# Metric family -> asv class in benchmarks/gpt2.py.
BENCHMARKS = {"time": "Gpt2Generate", "first-run": "Gpt2FirstRun", "size": "Gpt2Size",
              "memory": "Gpt2Memory", "accuracy": "Gpt2Accuracy"}
CHECKPOINT_ENV = "KERNELWATCH_GPT2_CHECKPOINT"
SETTINGS = {"checkpoint": CHECKPOINT_ENV}
# Bump when the ONNX graph or its export changes: cached exports are keyed by it.
EXPORT_VERSION = "2"


def check_checkpoint(path: Path, size: str) -> None:
    """One clear error when a checkpoint directory is not the selected GPT-2 size."""
    conf_path = Path(path) / "config.json"
    if not conf_path.is_file():
        raise KernelwatchError(f"{path} is not a Hugging Face checkpoint directory (no "
                               "config.json); pass a directory saved by save_pretrained")
    conf = json.loads(conf_path.read_text())
    if conf.get("model_type") != "gpt2":
        raise KernelwatchError(f"{path} holds a {conf.get('model_type')!r} model, not GPT-2; "
                               "pass a GPT-2 checkpoint directory")
    want = SIZES[size]
    differs = [f"{k} {conf.get(k)} (want {getattr(want, k)})" for k in ("n_layer", "n_embd",
               "n_head") if conf.get(k) != getattr(want, k)]
    if differs:
        raise KernelwatchError(f"{path} is not {size}: {', '.join(differs)}; select the size "
                               f"it is (--param size=...) or another checkpoint")


def validate_settings(settings: dict[str, str], chosen: dict[str, list[str]]) -> None:
    """Called by the CLI before asv starts, so a wrong checkpoint is one message, not a
    failure per benchmark."""
    path = settings.get(CHECKPOINT_ENV)
    if path:
        for size in chosen.get("size") or list(SIZES):
            check_checkpoint(Path(path), size)


# What generators.py and quantize.py call: generate(min_new_tokens=...) and torchao's
# quantize_ with the config classes.
TORCHAO = Library(">=0.9.0", "before 0.9.0 quantize_ takes the lower-case functions "
                  "(int8_weight_only()), not the config classes called here")
LIBRARIES = {"transformers": Library(">=4.26.0", "generate() takes min_new_tokens from "
                                     "4.26.0 on"),
             "torchao": TORCHAO}


SPEC = Workload(
    name="gpt2", params=PARAMS, metrics=BENCHMARKS, variants=VARIANTS, suites=SUITES,
    baseline=BASELINE, settings=SETTINGS, validate_settings=validate_settings,
    targets={"transformers": {}}, libraries=LIBRARIES)
