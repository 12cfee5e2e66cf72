"""GPT-2 generate: greedy decoding of N new tokens after a fixed prompt, batch 1.

The write-up this grew from (GPT-2 XL quantization on a CPU) compared FP32, PyTorch
dynamic INT8 and ONNX Runtime INT8 on a CPU and found dynamic INT8 "barely shrinks" the model.
The cause: GPT-2's layers are `transformers.pytorch_utils.Conv1D`, not `nn.Linear`, so
`quantize_dynamic` quantized only `lm_head`. Here `int8-dynamic` converts every Conv1D to
`nn.Linear` first, and `int8-dynamic-as-seed` keeps the write-up's way so the difference shows.

Variants (a transformation of the plain Hugging Face model, applied from outside):
- `fp32` (CPU) / `bf16` (CUDA): the baseline, `GPT2LMHeadModel.generate`;
- `int8-dynamic`: Conv1D -> Linear, then `torch.ao` dynamic quantization of every Linear
  (int8 weights, activations quantized per call) and weight-only quantization of the two
  embeddings, so the saved model is 8-bit throughout, as ONNX Runtime's is;
- `int8-dynamic-as-seed`: `quantize_dynamic(model, {nn.Linear})` with no conversion;
- `torchao-int8-weight-only`, `torchao-int8-dynamic`: torchao's `quantize_` with
  `Int8WeightOnlyConfig` / `Int8DynamicActivationInt8WeightConfig` after the conversion
  (torchao is the maintained successor of `torch.ao` quantization);
- `onnx-fp32`, `onnx-int8`: one ONNX graph with the KV cache as inputs and outputs
  (`DecoderWithCache`), exported with `torch.onnx.export(dynamo=True)`; INT8 through
  `onnxruntime.quantization.quantize_dynamic`; greedy decoding through an ONNX Runtime
  session that feeds each step's present keys/values back, so no step recomputes the prompt;
- `compile`: transformers' own compiled decoding: a static KV cache and `torch.compile` of
  the decode step (`cache_implementation="static"` with a `CompileConfig`).

Weights are random by default (seeded, `initializer_range` 0.05: the default 0.02 makes a
random GPT-2 repeat one token forever, which would make token agreement meaningless), built
from `GPT2Config` and cached on disk. `--param checkpoint=DIR` (or
$KERNELWATCH_GPT2_CHECKPOINT) loads a local Hugging Face GPT-2 directory instead; nothing is
ever downloaded.

Bytes per decoded token: every weight is read once per step, so the floor on a device is
`model bytes / copy bandwidth` per token (the report's "% of bound").
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from kernelwatch import measure
from kernelwatch.errors import KernelwatchError, Unavailable, check_choices
from kernelwatch.workloads._case import Case


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

VARIANTS = ("fp32", "bf16", "int8-dynamic", "int8-dynamic-as-seed", "torchao-int8-weight-only",
            "torchao-int8-dynamic", "onnx-fp32", "onnx-int8", "compile")
BASELINE = {"cpu": "fp32", "cuda": "bf16"}
CPU_ONLY = {
    "fp32": "the GPU baseline is bf16",
    "int8-dynamic": "torch.ao dynamic quantization has CPU kernels only",
    "int8-dynamic-as-seed": "torch.ao dynamic quantization has CPU kernels only",
    "onnx-fp32": "the ONNX variants use onnxruntime's CPU provider; on a GPU machine they "
                 "would measure its host CPU",
    "onnx-int8": "the ONNX variants use onnxruntime's CPU provider; on a GPU machine they "
                 "would measure its host CPU",
}
CUDA_ONLY = {"bf16": "bf16 is the GPU baseline; the CPU's is fp32"}

# Strings: asv params match by repr, and the CLI selects by name. Threads: "all" is every
# core this process may use; 1 is the write-up's setting.
PARAMS = {"size": list(SIZES), "prompt_tokens": ["10", "128"], "new_tokens": ["100", "16"],
          "threads": ["1", "all"], "variant": list(VARIANTS)}
# The quick run (`make demo`: two commits x two torch versions): the one figure that says
# whether INT8 pays, the decode step of fp32 and int8-dynamic over a short generation. Every
# GPT-2 process loads transformers and a model (about 20 s here), so each variant or metric
# more costs minutes there; ONNX, size and agreement are in the tests and full runs.
QUICK = {"size": ["gpt2"], "prompt_tokens": ["10"], "new_tokens": ["16"], "threads": ["1"],
         "variant": ["fp32", "int8-dynamic"]}
QUICK_METRICS = ("time",)
QUICK_TRACKS = ("decode_time",)
# Metric family -> asv class in benchmarks/gpt2.py.
BENCHMARKS = {"time": "Gpt2Generate", "first-run": "Gpt2FirstRun", "size": "Gpt2Size",
              "memory": "Gpt2Memory", "accuracy": "Gpt2Accuracy"}
CHECKPOINT_ENV = "KERNELWATCH_GPT2_CHECKPOINT"
SETTINGS = {"checkpoint": CHECKPOINT_ENV}
# Bump when the ONNX graph or its export changes: cached exports are keyed by it.
EXPORT_VERSION = "2"


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


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every `transformers.pytorch_utils.Conv1D` (weight [in, out]) with an
    `nn.Linear` (weight [out, in]) computing the same; returns how many were replaced.
    Layer by layer, so at most one layer's weight exists twice."""
    from transformers.pytorch_utils import Conv1D

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape
                linear = nn.Linear(n_in, n_out, device="meta")
                linear.weight = nn.Parameter(child.weight.detach().t().contiguous(),
                                             requires_grad=False)
                # A copy, not a view of the checkpoint's mapped file: a quantized layer keeps
                # its bias, and one live view keeps every page of the file resident.
                linear.bias = nn.Parameter(child.bias.detach().clone(), requires_grad=False)
                setattr(parent, name, linear)
                count += 1
    return count


class DecoderWithCache(nn.Module):
    """GPT-2's forward with the KV cache as explicit tensors, for ONNX: one graph serves the
    prefill (past length 0, the whole prompt) and every decode step (one token, the past of
    all earlier ones). It reuses the Hugging Face model's own modules and weights; only the
    cache plumbing is written out, with the causal mask built from positions so it is right
    for any (past, new) lengths.

    past_keys / past_values: [n_layer, batch, n_head, past, head_dim];
    returns logits [batch, new, vocab] and the presents (past + new along dim 3)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        body = model.transformer
        self.wte, self.wpe, self.blocks, self.ln_f = body.wte, body.wpe, body.h, body.ln_f
        self.lm_head = model.lm_head
        self.n_head = model.config.n_head

    def forward(self, input_ids, past_keys, past_values):
        batch, new = input_ids.shape
        past = past_keys.shape[3]
        positions = torch.arange(past, past + new, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(positions)
        mask = torch.arange(past + new, device=x.device)[None, :] <= positions[:, None]
        width = x.shape[-1]
        head_dim = width // self.n_head
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(width, dim=2)
            q, k, v = (t.view(batch, new, self.n_head, head_dim).transpose(1, 2)
                       for t in (q, k, v))
            k = torch.cat([past_keys[i], k], dim=2)
            v = torch.cat([past_values[i], v], dim=2)
            keys.append(k)
            values.append(v)
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + block.attn.c_proj(attn.transpose(1, 2).reshape(batch, new, width))
            x = x + block.mlp(block.ln_2(x))
        return self.lm_head(self.ln_f(x)), torch.stack(keys), torch.stack(values)


# ----------------------------------------------------------------------------- variants


def _own_weights(model: nn.Module) -> None:
    """Copy the weights a quantization left in float (LayerNorms, an unquantized embedding)
    out of the checkpoint file. `from_pretrained` maps the safetensors file, and while any
    one of its tensors lives, every page of the file read during quantization stays
    resident: GPT-2 small's int8 process showed the whole fp32 file in its RSS."""
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None and type(p) is nn.Parameter:
                module._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=False)
        for name, b in module._buffers.items():
            if b is not None and type(b) is torch.Tensor:
                module._buffers[name] = b.clone()


def _quantized_count(model: nn.Module) -> int:
    """Modules whose weights are quantized: torch.ao's quantized Linear/Embedding, or a
    Linear whose weight torchao replaced by a quantized tensor subclass."""
    count = 0
    for m in model.modules():
        cls = type(m)
        if cls.__module__.startswith("torch.ao.nn.quantized") and cls.__name__ in (
                "Linear", "Embedding"):
            count += 1
        elif isinstance(m, nn.Linear) and type(m.weight) not in (torch.Tensor, nn.Parameter):
            count += 1
    return count


def _torch_ao_dynamic(model: nn.Module, convert: bool) -> None:
    try:
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            float_qparams_weight_only_qconfig,
            quantize_dynamic,
        )
    except ImportError as exc:
        raise Unavailable(f"torch.ao dynamic quantization is gone from this torch ({exc})"
                          ) from exc
    if convert:
        conv1d_to_linear(model)
        spec = {nn.Linear: default_dynamic_qconfig,
                nn.Embedding: float_qparams_weight_only_qconfig}
    else:
        spec = {nn.Linear}  # the write-up's call: only real nn.Linear modules (lm_head)
    quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def _torchao(model: nn.Module, variant: str) -> None:
    try:
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )
    except ImportError as exc:
        raise Unavailable(f"{variant} needs torchao, which does not import here ({exc}); "
                          "pip install torchao") from exc
    conv1d_to_linear(model)
    cfg = (Int8WeightOnlyConfig() if variant == "torchao-int8-weight-only"
           else Int8DynamicActivationInt8WeightConfig())
    quantize_(model, cfg)


class _TokenStreamer:
    """transformers' streamer protocol: `put` gets the prompt first, then each new token
    (already copied to the host, so the device has finished it); `end` at the finish."""

    def __init__(self, on_token: Callable[[], None]):
        self.on_token = on_token
        self.prompt_seen = False

    def put(self, value) -> None:
        if self.prompt_seen:
            self.on_token()
        self.prompt_seen = True

    def end(self) -> None:
        pass


class TorchGenerator:
    """A (possibly quantized or compiled) `GPT2LMHeadModel`, generating with `generate`."""

    def __init__(self, model: nn.Module, device: torch.device, generate_kwargs: dict,
                 quantized_modules: int):
        self.model, self.device = model, device
        self.generate_kwargs = generate_kwargs
        self.quantized_modules = quantized_modules

    def generate(self, prompt: torch.Tensor, new_tokens: int,
                 on_token: Callable[[], None] | None = None) -> list[int]:
        prompt = prompt.to(self.device)
        streamer = _TokenStreamer(on_token) if on_token else None
        with torch.inference_mode():
            out = self.model.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                min_new_tokens=new_tokens, max_new_tokens=new_tokens,
                pad_token_id=self.model.config.eos_token_id, streamer=streamer,
                **self.generate_kwargs)
        return out[0, prompt.shape[1]:].tolist()

    def prompt_logits(self, prompt: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(prompt.to(self.device)).logits[0].float().cpu()

    def save(self, directory: Path) -> list[Path]:
        path = Path(directory) / "model.pt"
        torch.save(self.model.state_dict(), path)
        return [path]


class OnnxGenerator:
    """Greedy decoding through one ONNX Runtime session of `DecoderWithCache`: the prefill
    returns the cache, and each step feeds the previous step's presents back."""

    def __init__(self, files: list[Path], threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Threads set like torch's: intra-op as the benchmark says, no inter-op pool.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.files = files
        self.session = ort.InferenceSession(str(files[0]), options,
                                            providers=["CPUExecutionProvider"])
        past = self.session.get_inputs()[1].shape  # [n_layer, 1, n_head, past, head_dim]
        self.empty_past = (past[0], 1, past[2], 0, past[4])
        self.quantized_modules = 0

    def _empty(self):
        import numpy as np

        return np.zeros(self.empty_past, dtype=np.float32)

    def generate(self, prompt: torch.Tensor, new_tokens: int,
                 on_token: Callable[[], None] | None = None) -> list[int]:
        import numpy as np

        ids = prompt.cpu().numpy()
        keys = values = self._empty()
        out: list[int] = []
        for _ in range(new_tokens):
            logits, keys, values = self.session.run(
                None, {"input_ids": ids, "past_keys": keys, "past_values": values})
            token = int(logits[0, -1].argmax())
            out.append(token)
            if on_token:
                on_token()
            ids = np.array([[token]], dtype=np.int64)
        return out

    def prompt_logits(self, prompt: torch.Tensor) -> torch.Tensor:
        logits, _, _ = self.session.run(
            None, {"input_ids": prompt.cpu().numpy(), "past_keys": self._empty(),
                   "past_values": self._empty()})
        return torch.from_numpy(logits[0]).float()

    def save(self, directory: Path) -> list[Path]:
        return self.files  # the exported model is already on disk


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


def _export_onnx(size: str, precision: str, target: str) -> None:
    """Export (and for int8 quantize) into `target`; runs in a child process, so the torch
    model never adds to the measuring process's memory."""
    model = load_model(size, torch.float32, torch.device("cpu"))
    if precision == "int8":
        # lm_head shares the embedding's matrix. ONNX Runtime's quantizer then quantizes that
        # one initializer for the Gather and dequantizes all of it for lm_head's MatMul on
        # every step (lm_head is a third of GPT-2 small's work); its own copy gets an
        # integer MatMul, as torch.ao's int8-dynamic does.
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    module = DecoderWithCache(model).eval()
    s = SIZES[size]
    head_dim = s.n_embd // s.n_head
    # Example lengths above 1, so torch.export keeps both dims symbolic (0 and 1 specialise).
    ids = torch.zeros(1, 2, dtype=torch.long)
    past = torch.zeros(s.n_layer, 1, s.n_head, 3, head_dim)
    new_dim = torch.export.Dim("new_tokens", min=1, max=1024)
    past_dim = torch.export.Dim("past", min=0, max=1023)
    work = Path(target)
    fp32 = work / "fp32" / "model.onnx"
    fp32.parent.mkdir(parents=True)
    with torch.no_grad():
        torch.onnx.export(
            module, (ids, past, past.clone()), str(fp32), dynamo=True, external_data=True,
            input_names=["input_ids", "past_keys", "past_values"],
            output_names=["logits", "present_keys", "present_values"],
            dynamic_shapes={"input_ids": {1: new_dim}, "past_keys": {3: past_dim},
                            "past_values": {3: past_dim}})
    del model, module
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = work / "int8" / "model.onnx"
        out.parent.mkdir()
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8,
                         use_external_data_format=s.n_layer * s.n_embd ** 2 * 12 > 2e9)
        shutil.rmtree(fp32.parent)
    else:
        (work / "fp32").rename(work / "out")
        return
    (work / "int8").rename(work / "out")


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
        child = ctx.Process(target=_export_onnx, args=(size, precision, str(work)))
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
        _torch_ao_dynamic(model, convert=variant == "int8-dynamic")
        _own_weights(model)
    elif variant.startswith("torchao-"):
        _torchao(model, variant)
        _own_weights(model)
    elif variant == "compile":
        from transformers import CompileConfig

        compile_config = CompileConfig(fullgraph=True, mode="reduce-overhead"
                                       if device.type == "cuda" else "default")
        if device.type != "cuda":
            # transformers compiles automatically on accelerators only; this is its switch
            # for other devices (its own tests use it).
            compile_config._compile_all_devices = True
        kwargs = {"cache_implementation": "static", "compile_config": compile_config}
    return TorchGenerator(model, device, kwargs, _quantized_count(model))


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
        """One short generation: compiles a compiled variant, and pays one-time costs
        (allocator, ONNX Runtime's first run) before anything is timed."""
        self.generator.generate(self.prompt, min(4, self.new_tokens))
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
    if device.type == "cuda" and variant in CPU_ONLY:
        raise Unavailable(f"{variant} runs on the CPU only: {CPU_ONLY[variant]}")
    if device.type != "cuda" and variant in CUDA_ONLY:
        raise Unavailable(f"{variant} needs a CUDA GPU: {CUDA_ONLY[variant]}")
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

