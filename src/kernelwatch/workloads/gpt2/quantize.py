"""GPT-2's quantized variants: Conv1D converted to Linear, torch.ao's dynamic quantization,
torchao's `quantize_`, and the bookkeeping that keeps their memory figures honest."""

from __future__ import annotations

import torch
from torch import nn

from kernelwatch.errors import Unavailable

# torchao_quantize calls `quantize_` with the config classes (Int8WeightOnlyConfig,
# Int8DynamicActivationInt8WeightConfig), which 0.9.0 introduced: the releases it follows
# are the workload's declaration (spec.LIBRARIES).


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


def own_weights(model: nn.Module) -> None:
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


def quantized_count(model: nn.Module) -> int:
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


def torch_ao_dynamic(model: nn.Module, convert: bool) -> None:
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


def torchao_quantize(model: nn.Module, variant: str) -> None:
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
