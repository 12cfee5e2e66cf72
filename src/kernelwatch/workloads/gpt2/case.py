"""GPT-2 generate's cases (the declaration is spec.py): greedy decoding of N new tokens
after a fixed prompt, batch 1.

The GPT-2 XL CPU write-up found dynamic INT8 "barely shrinks" the model: GPT-2's layers are
`transformers.pytorch_utils.Conv1D`, not `nn.Linear`, so `quantize_dynamic` quantized only
`lm_head`. `int8-dynamic` converts every Conv1D first; `int8-dynamic-as-seed` does not.

Variants (a transformation of the plain Hugging Face model, applied from outside):
- `fp32` (CPU) / `bf16` (CUDA): the baseline, `GPT2LMHeadModel.generate`;
- `int8-dynamic`: Conv1D -> Linear, then `torch.ao` dynamic quantization of every Linear
  (int8 weights, activations quantized per call) and weight-only quantization of the two
  embeddings, so the saved model is 8-bit throughout, as ONNX Runtime's is;
- `int8-dynamic-as-seed`: `quantize_dynamic(model, {nn.Linear})` with no conversion;
- `torchao-int8-weight-only`, `torchao-int8-dynamic`: torchao's `quantize_` (`torch.ao`'s
  maintained successor) with `Int8WeightOnlyConfig` / `Int8DynamicActivationInt8WeightConfig`;
- `onnx-fp32`, `onnx-int8`: one ONNX graph with the KV cache as inputs and outputs
  (`DecoderWithCache`), exported with `torch.onnx.export(dynamo=True)`; INT8 through
  `onnxruntime.quantization.quantize_dynamic`; greedy decoding through an ONNX Runtime
  session that feeds each step's present keys/values back, so no step recomputes the prompt;
- `compile`: transformers' compiled decoding (a static KV cache, a `CompileConfig`).

Weights are random by default (seeded, `initializer_range` 0.05: the default 0.02 makes a
random GPT-2 repeat one token forever, which would make token agreement meaningless), built
from `GPT2Config` and cached on disk. `--param checkpoint=DIR` (or
$KERNELWATCH_GPT2_CHECKPOINT) loads a local Hugging Face GPT-2 directory instead; nothing is
ever downloaded.

Bytes per decoded token: every weight is read once per step, so the floor on a device is
`model bytes / copy bandwidth` per token (the report's "% of bound").
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kernelwatch import measure
from kernelwatch.errors import Unavailable, check_choices
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.gpt2.generators import OnnxGenerator, TorchGenerator
from kernelwatch.workloads.gpt2.onnx import DecoderWithCache as DecoderWithCache
from kernelwatch.workloads.gpt2.onnx import export_onnx
from kernelwatch.workloads.gpt2.quantize import conv1d_to_linear as conv1d_to_linear
from kernelwatch.workloads.gpt2.quantize import (
    own_weights,
    quantized_count,
    torch_ao_dynamic,
    torchao_quantize,
)
from kernelwatch.workloads.gpt2.spec import (
    BASELINE,
    CHECKPOINT_ENV,
    EXPORT_VERSION,
    INIT_RANGE,
    PARAMS,
    SEED,
    SIZES,
    VARIANTS,
    VOCAB_SIZE,
    WRITEUP_PROMPT,
    check_checkpoint,
)
from kernelwatch.workloads.gpt2.spec import (
    SPEC as SPEC,
)
from kernelwatch.workloads.gpt2.spec import (
    validate_settings as validate_settings,
)

# ----------------------------------------------------------------------------- the model


def cache_dir() -> Path:
    """Where random-weight models, ONNX exports and references are kept between processes
    (each asv benchmark is a fresh process; rebuilding GPT-2 XL each time costs a minute)."""
    root = os.environ.get("KERNELWATCH_CACHE") or os.path.expanduser("~/.cache/kernelwatch")
    return Path(root) / "gpt2"


def config(size: str):
    from transformers import GPT2Config

    s = SIZES[size]
    return GPT2Config(n_layer=s.n_layer, n_embd=s.n_embd, n_head=s.n_head,
                      vocab_size=VOCAB_SIZE, initializer_range=INIT_RANGE)


def model_dir(size: str) -> Path:
    """The checkpoint directory to load: the user's, or the seeded random model (built and
    saved once, then loaded like a real checkpoint)."""
    user = os.environ.get(CHECKPOINT_ENV)
    if user:
        check_checkpoint(Path(user), size)
        return Path(user)
    target = cache_dir() / f"{size}-random-init{INIT_RANGE}-seed{SEED}"
    if not (target / "config.json").is_file():
        from transformers import GPT2LMHeadModel

        torch.manual_seed(SEED)
        model = GPT2LMHeadModel(config(size))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
        model.save_pretrained(tmp)
        del model
        try:
            tmp.rename(target)  # atomic: a concurrent builder's copy is as good as ours
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(size: str, dtype: torch.dtype, device: torch.device):
    from transformers import GPT2LMHeadModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a download
    # On a GPU the weights go straight to it (converted there): GPT-2 XL's 6 GB through
    # host memory took most of a benchmark process's time.
    placement = {"device_map": str(device)} if device.type == "cuda" else {}
    model = GPT2LMHeadModel.from_pretrained(model_dir(size), dtype=dtype, **placement)
    return model.to(device).eval()


def prompt_ids(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    ids = list(WRITEUP_PROMPT[:length])
    if length > len(ids):
        g = torch.Generator().manual_seed(1)
        ids += torch.randint(0, VOCAB_SIZE, (length - len(ids),), generator=g).tolist()
    return torch.tensor([ids], dtype=torch.long, device=device)


# ----------------------------------------------------------------------------- variants


def _versions() -> str:
    from importlib import metadata

    parts = [torch.__version__]
    for dist in ("transformers", "onnx", "onnxscript", "onnxruntime"):
        try:
            parts.append(f"{dist}{metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}-none")
    return "-".join(parts)


def _export_key(size: str, precision: str) -> str:
    source = os.environ.get(CHECKPOINT_ENV) or f"random-init{INIT_RANGE}-seed{SEED}"
    digest = hashlib.sha256(f"{source}|{_versions()}|{EXPORT_VERSION}".encode()).hexdigest()
    return f"{size}-{precision}-{digest[:16]}"


def onnx_files(size: str, precision: str) -> list[Path]:
    """The exported model's files (the graph first, then its external data), exporting
    first if this torch/onnx/onnxruntime combination has not exported it yet."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"onnx-{precision} needs onnxruntime, which does not import here "
                          f"({exc}); pip install 'kernelwatch[gpt2]'") from exc
    target = cache_dir() / "onnx" / _export_key(size, precision)
    if not (target / "model.onnx").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".exporting-"))
        ctx = multiprocessing.get_context("spawn")
        # The fp32 model is loaded in the child, so it never adds to this process's memory.
        load = functools.partial(load_model, size, torch.float32, torch.device("cpu"))
        child = ctx.Process(target=export_onnx,
                            args=(load, SIZES[size], precision, str(work)))
        child.start()
        child.join()
        if child.exitcode != 0 or not (work / "out" / "model.onnx").is_file():
            shutil.rmtree(work, ignore_errors=True)
            raise RuntimeError(f"ONNX export of {size} ({precision}) failed on torch "
                               f"{torch.__version__} (child exit {child.exitcode}); the "
                               "export's own error is printed above")
        try:
            (work / "out").rename(target)
        except OSError:
            pass  # another process finished the same export first
        shutil.rmtree(work, ignore_errors=True)
    graph = target / "model.onnx"
    return [graph, *sorted(p for p in target.iterdir() if p != graph)]


def build_generator(size: str, variant: str, device: torch.device, threads: int):
    """The variant's generator, ready to generate (compiled variants compile on first use)."""
    if variant.startswith("onnx-"):
        return OnnxGenerator(onnx_files(size, variant.removeprefix("onnx-")), threads)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_model(size, dtype, device)
    kwargs: dict = {}
    if variant in ("int8-dynamic", "int8-dynamic-as-seed"):
        torch_ao_dynamic(model, convert=variant == "int8-dynamic")
        own_weights(model)
    elif variant.startswith("torchao-"):
        torchao_quantize(model, variant)
        own_weights(model)
    elif variant == "compile":
        from transformers import CompileConfig

        compile_config = CompileConfig(fullgraph=True, mode="reduce-overhead"
                                       if device.type == "cuda" else "default")
        if device.type != "cuda":
            # transformers compiles automatically on accelerators only; this is its switch
            # for other devices (its own tests use it).
            compile_config._compile_all_devices = True
        kwargs = {"cache_implementation": "static", "compile_config": compile_config}
    return TorchGenerator(model, device, kwargs, quantized_count(model))


# ----------------------------------------------------------------------------- a case


def thread_count(threads: str) -> int:
    return len(os.sched_getaffinity(0)) if threads == "all" else int(threads)


@dataclass
class Reference:
    """What the baseline produced for a case: greedy tokens and the prompt's logits."""

    tokens: list[int]
    prompt_logits: torch.Tensor


@dataclass
class Agreement:
    """A variant against the baseline on the same weights and prompt."""

    token_match: float  # fraction of the N greedy tokens equal, position by position
    max_logit_diff: float  # over the prompt's logits
    mean_logit_diff: float


@dataclass
class Gpt2Case(Case):
    """One variant's generator and prompt: a call generates the N new tokens. Its times are
    the token clock's (`timed_generations`), not a timed loop of calls."""

    size: str
    prompt_tokens: int
    new_tokens: int
    threads: int
    variant: str
    device: torch.device
    generator: TorchGenerator | OnnxGenerator

    input_sets = ((),)
    device_method = None

    @property
    def prompt(self) -> torch.Tensor:
        return prompt_ids(self.prompt_tokens)

    def call(self) -> list[int]:
        return self.generate()

    def generate(self, on_token: Callable[[], None] | None = None) -> list[int]:
        return self.generator.generate(self.prompt, self.new_tokens, on_token)

    def warm_up(self) -> None:
        """One generation as the timed ones generate it, all N tokens: it compiles a
        compiled variant and pays the one-time costs (ONNX Runtime's first run, the first
        step at each cache length: the CUDA allocator's new blocks, per-shape kernel
        choices) before anything is timed. A shorter one leaves them to the first timed
        generation: the static KV cache is sized by N, so `compile` recompiled at its first
        timed step (26-36 s on an H100), and eager bf16's steps past the warm-up's lengths
        took 53 ms against 18 ms at the same lengths in later generations
        (docs/findings/gpu-history-h200.md)."""
        self.generator.generate(self.prompt, self.new_tokens)
        measure.synchronize(self.device)

    def timed_generations(self) -> list[measure.TokenTimes]:
        return measure.time_generations(self.generate)

    def size_on_disk(self) -> int:
        """Bytes of the saved model: the state_dict for torch variants, the .onnx graph and
        its external data for ONNX ones."""
        with tempfile.TemporaryDirectory(prefix="kernelwatch-gpt2-size-") as d:
            return sum(p.stat().st_size for p in self.generator.save(Path(d)))

    def agreement(self, reference: Reference) -> Agreement:
        tokens = self.generate()
        matches = sum(a == b for a, b in zip(tokens, reference.tokens, strict=True))
        diff = (self.generator.prompt_logits(self.prompt) - reference.prompt_logits).abs()
        return Agreement(matches / len(tokens), float(diff.max()), float(diff.mean()))


def build_case(size: str, prompt_tokens: str, new_tokens: str, threads: str, variant: str,
               device: str | torch.device = "cpu") -> Gpt2Case:
    check_choices(PARAMS, {"size": [size], "prompt_tokens": [prompt_tokens],
                           "new_tokens": [new_tokens], "threads": [threads],
                           "variant": [variant]}, where="gpt2")
    device = torch.device(device)
    VARIANTS[variant].check(device.type)
    n_threads = thread_count(threads)
    torch.set_num_threads(n_threads)
    generator = build_generator(size, variant, device, n_threads)
    return Gpt2Case(size, int(prompt_tokens), int(new_tokens), n_threads, variant, device,
                    generator)


def reference(size: str, prompt_tokens: str, new_tokens: str, device: torch.device
              ) -> Reference:
    """The baseline's tokens and prompt logits for a case, computed once per torch version
    and device kind and cached on disk (the threads setting does not change them)."""
    device = torch.device(device)
    source = os.environ.get(CHECKPOINT_ENV) or f"random-init{INIT_RANGE}-seed{SEED}"
    key = hashlib.sha256(f"{source}|{torch.__version__}|{device.type}".encode()).hexdigest()
    path = (cache_dir() / "reference"
            / f"{size}-p{prompt_tokens}-n{new_tokens}-{device.type}-{key[:16]}.pt")
    if path.is_file():
        saved = torch.load(path)
        return Reference(saved["tokens"], saved["prompt_logits"])
    case = build_case(size, prompt_tokens, new_tokens, "1", BASELINE[device.type], device)
    ref = Reference(case.generate(), case.generator.prompt_logits(case.prompt))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"tokens": ref.tokens, "prompt_logits": ref.prompt_logits}, tmp)
    tmp.rename(path)
    del case
    measure.release_freed_memory()
    return ref

