"""GPT-2's generators: the Hugging Face model's `generate` (plain, quantized or compiled)
and greedy decoding through an ONNX Runtime session; each reports every new token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

# The transformers releases the GPT-2 generator can call: `generate(min_new_tokens=...)`
# (4.26.0 on), without which random weights stop early on EOS, and Conv1D in
# `transformers.pytorch_utils` (there since before 4.25).


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
