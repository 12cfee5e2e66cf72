"""GPTQ per-layer table on a GPU, in one process (asv's one-process-per-value would spend the
device budget on interpreter start-ups; `kernelwatch run` records the history).

For each variant (outer loop) and each linear of the model (inner loop): the first call (the
first shape's includes the cold compile: the inductor and Triton caches start empty), the
steady time, peak CUDA memory, and agreement with eager at the same block size. Ends with the
decoder layer (the sum over its linears) and speedups vs eager. Prints as it goes, so a run
cut short still reports what it reached.

    python scripts/gptq_device_table.py --variants eager triton compile-column compile-block@16
"""

import argparse
import os
import statistics
import sys
import tempfile

import torch

from kernelwatch import environment, measure
from kernelwatch.errors import Unavailable
from kernelwatch.workloads import gptq

p = argparse.ArgumentParser()
p.add_argument("--model", default="qwen2.5-3b")
p.add_argument("--scheme", default="w4-sym-g128")
p.add_argument("--variants", nargs="+",
               default=["eager", "triton", "compile-column", "llmcompressor", "compile-block@16"],
               help="variant[@blocksize], blocksize default 128")
p.add_argument("--samples", type=int, default=5)
a = p.parse_args()

cache = tempfile.mkdtemp(prefix="kernelwatch-table-cache-")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # cold: nothing compiled before this run
os.environ["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"{environment.host().get('gpu', dev)} | torch {environment.torch_facts()['torch']} | "
      f"{a.model} {a.scheme}", flush=True)
shapes = [s for s in gptq.SHAPES if s.startswith(a.model + "/")]
print("variant block layer | first_call_s steady_ms cv | peak_alloc_GiB | identical out_err "
      "eager_err", flush=True)
steady: dict[tuple[str, str], dict[str, float]] = {}
firsts: dict[tuple[str, str], dict[str, float]] = {}
bad = 0
for spec in a.variants:
    variant, _, block = spec.partition("@")
    block = block or "128"
    for shape in shapes:
        layer = shape.split("/", 1)[1]
        try:
            case = gptq.build_case(shape, a.scheme, block, variant, dev)
        except Unavailable as exc:
            print(f"{variant} {block} {layer} | skipped: {exc}", flush=True)
            break
        first = measure.first_call_seconds(case.quantize, dev)
        t = measure.time_callable(case.quantize, [()], dev, samples=a.samples, warmup=0)
        peak = measure.peak_memory(case.quantize, dev)
        q = case.quality(case.quantize(), case.eager_result())
        bad += q.worse_than_eager
        mean = statistics.fmean(t.per_call_seconds)
        steady.setdefault((variant, block), {})[layer] = mean
        firsts.setdefault((variant, block), {})[layer] = first
        print(f"{variant} {block} {layer} | {first:.2f} {mean * 1e3:.2f} {t.cv:.3f} | "
              f"{(peak.cuda_allocated or 0) / 2**30:.2f} | {q.identical_codes:.4f} "
              f"{q.output_error:.5f} {q.eager_output_error:.5f}"
              f"{' WORSE' if q.worse_than_eager else ''}", flush=True)
        del case

print("\nper layer: speedup vs eager at block 128 (steady)", flush=True)
eager = steady.get(("eager", "128"), {})
for (variant, block), per_layer in steady.items():
    row = " ".join(f"{layer}={eager[layer] / s:.1f}x" for layer, s in per_layer.items()
                   if layer in eager)
    print(f"{variant}@{block}: {row}", flush=True)
print("\ndecoder layer (sum over its linears)", flush=True)
print("variant block | first_call_s steady_s speedup", flush=True)
n = len(shapes)
for (variant, block), per_layer in steady.items():
    if len(per_layer) != n:
        continue
    total = sum(per_layer.values())
    speed = f"{sum(eager.values()) / total:.1f}x" if len(eager) == n else "n/a"
    print(f"{variant} {block} | {sum(firsts[(variant, block)].values()):.1f} {total:.3f} "
          f"{speed}", flush=True)
sys.exit(1 if bad else 0)
