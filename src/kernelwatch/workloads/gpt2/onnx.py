"""GPT-2 as one ONNX graph with the KV cache as inputs and outputs (the `onnx-*` variants),
and its export."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from kernelwatch.workloads.gpt2.spec import Gpt2Size


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


def export_onnx(load: Callable[[], nn.Module], s: Gpt2Size, precision: str,
                target: str) -> None:
    """Export the model `load()` returns, of size `s`, (and for int8 quantize it) into
    `target`/out; runs in a child process, so the torch model never adds to the measuring
    process's memory."""
    model = load()
    if precision == "int8":
        # lm_head shares the embedding's matrix. ONNX Runtime's quantizer then quantizes that
        # one initializer for the Gather and dequantizes all of it for lm_head's MatMul on
        # every step (lm_head is a third of GPT-2 small's work); its own copy gets an
        # integer MatMul, as torch.ao's int8-dynamic does.
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    module = DecoderWithCache(model).eval()
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
