"""Where one GPTQ layer's time goes on the GPU: torch.profiler over one warm quantization,
the top operators by GPU time, and GPU-busy time against the call's wall time (a diagnostic
for docs/findings/gptq-gpu.md, not a benchmark: the figures users compare come from asv).

    python scripts/gptq_profile.py --shape qwen2.5-3b/q_proj --variant triton
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from kernelwatch.workloads.gptq import case as gptq

p = argparse.ArgumentParser()
p.add_argument("--shape", nargs="+", default=["qwen2.5-3b/q_proj"])
p.add_argument("--scheme", default="w4-sym-g128")
p.add_argument("--blocksize", default="128")
p.add_argument("--variant", default="triton")
p.add_argument("--rows", type=int, default=12, help="operators to list")
p.add_argument("--device", default="cuda", help="cuda (default); cpu to try the script")
a = p.parse_args()

for shape in a.shape:
    case = gptq.build_case(shape, a.scheme, a.blocksize, a.variant, torch.device(a.device))
    case.quantize()  # compile / JIT and allocator warm-up outside the profile
    if a.device == "cuda":
        torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        case.quantize()
        if a.device == "cuda":
            torch.cuda.synchronize()
    events = prof.key_averages()
    # GPU work is the kernels' own time (the device-side events); CPU-side entries such as
    # "Command Buffer Full" carry bogus device times.
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    gpu_us = sum(e.self_device_time_total for e in kernels)
    n_kernels = sum(e.count for e in kernels)
    wall_us = max(e.time_range.end for e in prof.events()) - min(
        e.time_range.start for e in prof.events())
    print(f"\n== {shape} {a.scheme} block {a.blocksize} {a.variant}: "
          f"wall {wall_us / 1e3:.2f} ms, GPU busy {gpu_us / 1e3:.2f} ms "
          f"({100 * gpu_us / wall_us:.0f}%), {n_kernels} kernel launches")
    sort = "self_device_time_total" if a.device == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=a.rows, max_name_column_width=60))
