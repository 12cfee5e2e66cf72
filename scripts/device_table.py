"""One process on a GPU: for each case, check accuracy against float64 on fresh inputs
(the GPU test of every variant) and time it the way RopeTime does. Prints a row per case
as it goes, so a run cut short still reports what it reached."""

import argparse
import sys

import torch

from kernelwatch import measure
from kernelwatch.errors import Unavailable
from kernelwatch.workloads import rope

p = argparse.ArgumentParser()
p.add_argument("--shapes", nargs="+", default=["llama-3.1-8b"])
p.add_argument("--forms", nargs="+", default=list(rope.FORMS))
p.add_argument("--dtypes", nargs="+", default=["bfloat16"])
p.add_argument("--variants", nargs="+", default=list(rope.VARIANTS))
a = p.parse_args()
dev = torch.device("cuda")
l2 = measure.l2_cache_bytes(dev)
copy = measure.copy_bandwidth(dev)
print(f"copy bandwidth {copy / 1e9:.0f} GB/s, L2 {l2 >> 20} MiB", flush=True)
print("shape form dtype variant | rel_l2 ok | median_us cv GB/s %copy", flush=True)
bad = 0
for shape in a.shapes:
    for form in a.forms:
        for dtype in a.dtypes:
            for variant in a.variants:
                torch._dynamo.reset()
                try:
                    case = rope.build_case(shape, form, dtype, variant, dev, rotate_bytes=4 * l2)
                except Unavailable as exc:
                    print(f"{shape} {form} {dtype} {variant} | skipped: {exc}", flush=True)
                    continue
                inputs = case.fresh_inputs(seed=torch.randint(0, 2**31, ()).item())
                err = measure.accuracy(case.fn(*inputs), rope.reference(form, inputs))
                ok = err.within(rope.REL_L2_TOLERANCE[dtype])
                bad += not ok
                t = measure.time_cuda(case.fn, case.input_sets, cuda_graph=True)
                gbs = case.bytes_moved / t.median
                print(f"{shape} {form} {dtype} {variant} | {err.rel_l2:.2e} {ok} | "
                      f"{t.median * 1e6:.1f} {t.cv:.3f} {gbs / 1e9:.0f} {100 * gbs / copy:.0f}",
                      flush=True)
sys.exit(1 if bad else 0)
