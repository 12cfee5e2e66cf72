"""The reference RoPE kernel's launch configurations against compile, on the GPU, one process.

For each (step elements, warps, programs per SM[, head groups]) given, every shape and form:
the kernel's relative L2 error against float64 (checked, not only printed), its device time
(CUDA-graph replay over input sets four times the L2, as RopeTime), beside `compile`'s, as %
of the copy bandwidth measured first, and the compiled kernel's registers per thread and
spills with the programs an SM can hold by registers and by warps (a kernel that fits few
programs has few loads in flight). Per shape, first: a plain copy of the bytes RoPE moves,
timed the same way, the ceiling a kernel of that size reaches (the copy bandwidth is read
off a 2 GiB copy, whose launch and tail cost nothing per byte). The configuration in
rope/kernels.py is the one this picked.

--cpu needs no GPU: each configuration's registers, local memory (spills) and programs per
SM, read off the cubin Triton builds for an sm_90 GPU (H100 / H200), with the grid and the
bytes one program step loads.

Usage: python3 scripts/rope_triton_tune.py [--cpu] 2048,4,4 8192,8,8,4 ...
"""

from __future__ import annotations

import argparse
import math

import torch

from kernelwatch import measure
from kernelwatch.workloads.rope import case as rope
from kernelwatch.workloads.rope import kernels as kernel

SHAPES = ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b")
SMS = 132  # an H100 / H200


def use(config: tuple[int, int, int, int]) -> None:
    kernel.TRITON_STEP_ELEMENTS, kernel.TRITON_NUM_WARPS = config[:2]
    kernel.TRITON_PROGRAMS_PER_SM, kernel.TRITON_HEAD_GROUPS = config[2:]


def resources(shape: str, form: str) -> str:
    """The configuration in use, compiled for sm_90: one table cell."""
    s = rope.SHAPES[shape]
    sizes = (s.batch, s.q_heads, s.kv_heads, s.seq_len, s.head_dim // 2)
    interleaved = form == "interleaved"
    grid, params = kernel.launch_params(*sizes, interleaved=interleaved)
    usage = kernel.resource_usage(*sizes, interleaved=interleaved)
    step_kib = params["HB_Q"] * params["BLOCK_S"] * 2 * params["BLOCK_D"] * 2 / 1024
    waves = math.prod(grid) / (SMS * usage.programs_per_sm)
    return (f"{usage.registers} regs, {usage.spill_bytes} B local, "
            f"{usage.programs_per_sm} programs/SM ({usage.programs_per_sm * usage.num_warps} "
            f"warps), {step_kib:.0f} KiB a step, {waves:.1f} waves")


def cpu_table(configs: list[tuple[int, int, int, int]]) -> None:
    for config in configs:
        use(config)
        for shape in SHAPES:
            for form in rope.FORMS:
                print(f"{','.join(map(str, config))} {shape} {form}: {resources(shape, form)}",
                      flush=True)


def gpu_table(configs: list[tuple[int, int, int, int]]) -> None:
    dev = torch.device("cuda")
    bandwidth = measure.copy_bandwidth(dev)
    rotate = 4 * measure.l2_cache_bytes(dev)
    print(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    for shape in SHAPES:
        for form in rope.FORMS:
            compiled = rope.build_case(shape, form, "bfloat16", "compile", dev,
                                       rotate_bytes=rotate)
            half = compiled.bytes_moved // 2  # read once, written once
            pairs = [(torch.empty(half, dtype=torch.uint8, device=dev),
                      torch.empty(half, dtype=torch.uint8, device=dev))
                     for _ in compiled.input_sets]  # as many sets as the kernels rotate
            copy = measure.time_device(lambda dst, src: dst.copy_(src), pairs, dev,
                                       method=rope.DEVICE_METHOD).median
            t = measure.time_device(compiled.fn, compiled.input_sets, dev,
                                    method=rope.DEVICE_METHOD).median
            line = [f"{shape} {form}: same-size copy {copy * 1e6:.1f} us "
                    f"({compiled.bytes_moved / copy / bandwidth:.0%})",
                    f"compile {t * 1e6:.1f} us ({compiled.bytes_moved / t / bandwidth:.0%})"]
            case = rope.build_case(shape, form, "bfloat16", "triton", dev, rotate_bytes=rotate)
            for config in configs:
                use(config)
                inputs = case.fresh_inputs(seed=sum(config))
                err = measure.accuracy(case.fn(*inputs), rope.reference(form, inputs))
                assert err.within(rope.REL_L2_TOLERANCE["bfloat16"]), (config, err)
                t = measure.time_device(case.fn, case.input_sets, dev,
                                        method=rope.DEVICE_METHOD).median
                launched = kernel.launch(*inputs, interleaved=form == "interleaved")[2]
                usage = kernel.ResourceUsage(launched.n_regs, launched.n_spills,
                                             launched.metadata.shared, config[1])
                line.append(f"{','.join(map(str, config))}: {t * 1e6:.1f} us "
                            f"({case.bytes_moved / t / bandwidth:.0%}, {copy / t:.0%} of the "
                            f"copy; {usage.registers} regs, {usage.spill_bytes} spills, "
                            f"{usage.programs_per_sm} programs/SM)")
            print("; ".join(line), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true",
                   help="no GPU: registers, spills and programs per SM from an sm_90 compile")
    p.add_argument("configs", nargs="*", metavar="STEP,WARPS,PER_SM[,GROUPS]")
    args = p.parse_args()
    configs = [(tuple(int(v) for v in c.split(",")) + (1,))[:4] for c in args.configs] or [
        (kernel.TRITON_STEP_ELEMENTS, kernel.TRITON_NUM_WARPS, kernel.TRITON_PROGRAMS_PER_SM,
         kernel.TRITON_HEAD_GROUPS)]
    (cpu_table if args.cpu else gpu_table)(configs)


if __name__ == "__main__":
    main()
