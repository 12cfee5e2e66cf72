"""The kernels each compile mode launches for one call, on a GPU: RoPE (llama-3.1-8b, bf16,
both forms), the Llama layer (llama-3.2-1b, seq 2048, forward) and the ViT VAE's decoder
(350M, batch 1: eager against the INT8 variants), through kernelwatch.inventory (inductor's
generated modules; the profiler's CUDA kernels for eager), and where the call's device time
goes, kernel by kernel (measure.kernel_times: the profiler over three calls). One child
process per case, so each compiles cold and the inventory holds that case's code only.
Prints a table and each case's longest kernels; the JSON goes to $OUT or ./gpu-out.

Usage: python3 scripts/inventory_gpu.py [--deadline SECONDS] [--workload rope|llama_layer|vae]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kernelwatch import inventory

CASES = ([("rope", ("llama-3.1-8b", form, "bfloat16", v))
          for form in ("rotate-half", "interleaved")
          for v in ("eager", "compile", "compile-dynamic", "te-fused", "triton")]
         + [("llama_layer", ("llama-3.2-1b", "2048", "torch", "forward", v))
            for v in ("eager", "surgical", "compile", "compile-reduce-overhead")]
         + [("vae", ("350M-f16x64", "decoder", "1", v))
            for v in ("eager", "int8-weight-only", "int8-weight-only-compile",
                      "int8-dynamic-compile")])


def child(workload: str, params: list[str]) -> dict:
    import torch

    from kernelwatch import measure
    from kernelwatch.workloads.llama_layer import case as llama_layer
    from kernelwatch.workloads.rope import case as rope
    from kernelwatch.workloads.vae import case as vae

    dev = torch.device("cuda")
    module = {"rope": rope, "llama_layer": llama_layer, "vae": vae}[workload]
    case = module.build_case(*params, dev)
    call = (lambda: case.fn(*case.input_sets[0])) if workload == "rope" else case.run
    t0 = time.perf_counter()
    found = inventory.of_first_call(call, dev)
    seconds = time.perf_counter() - t0
    longest = [{"name": k.name, "ms": k.seconds * 1e3, "launches": k.launches}
               for k in measure.kernel_times(call, dev)[:8]]
    return {**found.as_dict(), "count": found.count, "seconds": seconds, "longest": longest}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deadline", type=float, default=150)
    ap.add_argument("--workload", choices=sorted({w for w, _ in CASES}),
                    help="only this workload's cases")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1:])))
        return 0
    out = Path(os.environ.get("OUT", "gpu-out"))
    out.mkdir(parents=True, exist_ok=True)
    start, rows = time.monotonic(), []
    for workload, params in CASES:
        if args.workload and workload != args.workload:
            continue
        left = args.deadline - (time.monotonic() - start)
        if left < 10:
            rows.append({"workload": workload, "params": params, "skipped": "deadline"})
            continue
        try:
            r = subprocess.run([sys.executable, __file__, "--child", workload, *params],
                               capture_output=True, text=True, timeout=left)
            got = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {
                "error": r.stderr.strip().splitlines()[-1][:200] if r.stderr else "failed"}
        except subprocess.TimeoutExpired:
            got = {"error": "deadline"}
        rows.append({"workload": workload, "params": params, **got})
    (out / "inventory.json").write_text(json.dumps(rows, indent=1))
    print("| workload | case | kernels | source | first call s | names |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        names = ", ".join(inventory.short_name(k, 40) for k in r.get("kernels", [])[:6])
        print(f"| {r['workload']} | {', '.join(r['params'])} | {r.get('count', '')} | "
              f"{r.get('source', r.get('error', r.get('skipped', '')))} | "
              f"{r.get('seconds', 0):.1f} | {names} |")
    print("\nThe longest kernels of a call (device ms per call, launches per call):")
    for r in rows:
        if r.get("longest"):
            total = sum(k["ms"] for k in r["longest"])
            print(f"- {r['workload']} {', '.join(r['params'])} (these {len(r['longest'])}: "
                  f"{total:.3f} ms): " + "; ".join(
                      f"{inventory.short_name(k['name'])} {k['ms']:.3f} x{k['launches']:g}"
                      for k in r["longest"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
