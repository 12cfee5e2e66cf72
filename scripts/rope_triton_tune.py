"""The reference RoPE kernel's launch configurations against compile, on the GPU, one process.

For each (step elements, warps, programs per SM[, head groups]) given, every shape and form:
the kernel's relative L2 error against float64 (checked, not only printed), its device time
(CUDA-graph replay over input sets four times the L2, as RopeTime), beside `compile`'s, as %
of the copy bandwidth measured first, and the compiled kernel's registers per thread and
spills with the programs an SM can hold by registers and by warps (a kernel that fits few
programs has few loads in flight). The configuration in _rope_triton.py is the one this
picked.

Usage (on the device): python3 scripts/rope_triton_tune.py 2048,4,4 8192,8,8,4 ...
"""

from __future__ import annotations

import sys

import torch

from kernelwatch import measure
from kernelwatch.workloads import _rope_triton as kernel
from kernelwatch.workloads import rope

# An H100 / H200 SM: 64K 32-bit registers and at most 64 resident warps.
REGISTERS_PER_SM = 65536
WARPS_PER_SM = 64


def main() -> None:
    configs = [(tuple(int(v) for v in c.split(",")) + (1,))[:4] for c in sys.argv[1:]] or [
        (kernel.TRITON_STEP_ELEMENTS, kernel.TRITON_NUM_WARPS, kernel.TRITON_PROGRAMS_PER_SM,
         kernel.TRITON_HEAD_GROUPS)]
    dev = torch.device("cuda")
    bandwidth = measure.copy_bandwidth(dev)
    print(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    for shape in ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"):
        for form in rope.FORMS:
            compiled = rope.build_case(shape, form, "bfloat16", "compile", dev,
                                       rotate_bytes=4 * measure.l2_cache_bytes(dev))
            t = measure.time_device(compiled.fn, compiled.input_sets, dev,
                                    method=rope.DEVICE_METHOD).median
            line = [f"{shape} {form}: compile {t * 1e6:.1f} us "
                    f"({compiled.bytes_moved / t / bandwidth:.0%})"]
            case = rope.build_case(shape, form, "bfloat16", "triton", dev,
                                   rotate_bytes=4 * measure.l2_cache_bytes(dev))
            for step, warps, per_sm, groups in configs:
                kernel.TRITON_STEP_ELEMENTS, kernel.TRITON_NUM_WARPS = step, warps
                kernel.TRITON_PROGRAMS_PER_SM, kernel.TRITON_HEAD_GROUPS = per_sm, groups
                inputs = case.fresh_inputs(seed=step + warps + per_sm + groups)
                err = measure.accuracy(case.fn(*inputs), rope.reference(form, inputs))
                assert err.within(rope.REL_L2_TOLERANCE["bfloat16"]), (step, warps, err)
                t = measure.time_device(case.fn, case.input_sets, dev,
                                        method=rope.DEVICE_METHOD).median
                compiled = kernel.launch(*inputs, interleaved=form == "interleaved")[2]
                regs, spills = compiled.n_regs, compiled.n_spills
                by_regs = REGISTERS_PER_SM // max(1, regs * 32 * warps)
                line.append(f"{step},{warps},{per_sm},{groups}: {t * 1e6:.1f} us "
                            f"({case.bytes_moved / t / bandwidth:.0%}; {regs} regs, "
                            f"{spills} spills, {min(by_regs, WARPS_PER_SM // warps)} "
                            "programs/SM)")
            print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
