"""Where one GPTQ layer's time goes on the GPU: torch.profiler over one warm quantization,
the top operators by GPU time, and GPU-busy time against the call's wall time (a diagnostic
for docs/findings/gptq-gpu.md, not a benchmark: the figures users compare come from asv).

    python scripts/gptq_profile.py --shape qwen2.5-3b/q_proj --variant triton
    python scripts/gptq_profile.py --factorization 2048 11008

--factorization N... times the upper Cholesky factor of a damped N x N Hessian's inverse two
ways: the workload's (Cholesky, cholesky_inverse, Cholesky again; 8n^3/3 on CUDA, where
cholesky_inverse is a solve against the identity) and one Cholesky of the reversed Hessian and
a triangular inverse (4n^3/3), and how far the two factors differ (the largest difference
over the largest entry). The Hessian is X^T X / 4n of a random X, well conditioned (about 8):
a timing of the two ways, not a test of their accuracy on a real calibration Hessian.
"""

import argparse
import time

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
p.add_argument("--factorization", type=int, nargs="+", metavar="N",
               help="time the inverse Hessian's factor two ways at these sizes, then stop")
a = p.parse_args()


def reversed_factor(h: torch.Tensor) -> torch.Tensor:
    """U upper with U^T U = H^-1: with P the reversal, L L^T = P H P gives U = P L^-1 P."""
    lower = torch.linalg.cholesky(h.flip(0, 1))
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    return torch.linalg.solve_triangular(lower, eye, upper=False).flip(0, 1)


def best_ms(fn, h: torch.Tensor) -> tuple[float, torch.Tensor]:
    fn(h)
    seconds = []
    for _ in range(5):
        if a.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn(h)
        if a.device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return min(seconds) * 1e3, out


if a.factorization:
    torch.manual_seed(0)
    print(f"{'n':>6} {'workload ms':>12} {'reversed ms':>12} {'ratio':>6} {'max rel diff':>13}")
    for n in a.factorization:
        x = torch.randn(4 * n, n, device=a.device)
        h = x.T @ x / (4 * n)
        ms_workload, u_workload = best_ms(
            lambda h: gptq.inverse_hessian_factor(h, 0.01)[0], h)
        ms_reversed, u_reversed = best_ms(
            lambda h: reversed_factor(h + torch.diag(torch.full_like(h.diag(),
                                                                     0.01 * h.diag().mean()))), h)
        diff = ((u_workload - u_reversed).abs().max() / u_workload.abs().max()).item()
        print(f"{n:>6} {ms_workload:>12.1f} {ms_reversed:>12.1f} "
              f"{ms_workload / ms_reversed:>6.2f} {diff:>13.2e}")
    raise SystemExit(0)

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
