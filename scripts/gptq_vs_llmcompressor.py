"""Cross-check kernelwatch's GPTQ reference against llm-compressor's `quantize_weight` on the
same weight, Hessian and scales. Run in an environment that has llmcompressor, e.g.
`python -m venv /tmp/lc && /tmp/lc/bin/pip install torch==2.13.0 llmcompressor` and
`PYTHONPATH=src /tmp/lc/bin/python scripts/gptq_vs_llmcompressor.py`."""

import os
import sys

import torch

from kernelwatch.workloads import gptq

os.environ.setdefault("LLMCOMPRESSOR_DISABLE_GPTQ_TRITON", "1")
from compressed_tensors.quantization import QuantizationArgs  # noqa: E402
from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight  # noqa: E402

bad = 0
for seed in (1, 2, 3):
    for name, scheme in gptq.SCHEMES.items():
        rows, cols = 128, 512
        g = torch.Generator().manual_seed(seed)
        weight = torch.randn(rows, cols, generator=g) * 0.02
        model = gptq.ActivationModel.make(cols, seed)
        h = gptq.hessian_of(model.sample(1024, seed + 1))
        held_out = model.sample(256, seed + 2)
        ours = gptq.gptq(weight, h, scheme, blocksize=128)
        args = QuantizationArgs(num_bits=scheme.bits, type="int", symmetric=scheme.symmetric,
                                strategy="group", group_size=scheme.group_size)
        out = quantize_weight(weight[None].clone(), h[None].clone(), ours.scale[None],
                              ours.zero[None], None, args, blocksize=128, percdamp=0.01)
        theirs = out[0][0]
        same = float((theirs == ours.dequantized).float().mean())
        err_ours = gptq.relative_output_error(weight, ours.dequantized, held_out)
        err_theirs = gptq.relative_output_error(weight, theirs, held_out)
        print(f"seed {seed} {name}: identical dequantized {same:.4f}, output error "
              f"kernelwatch {err_ours:.5f} llmcompressor {err_theirs:.5f}")
        bad += same < 0.995
sys.exit(1 if bad else 0)
