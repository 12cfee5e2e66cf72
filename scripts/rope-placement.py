"""Does where RoPE's inputs land in device memory move its device time? In one process,
the suite's RoPE case (llama-3.1-8b, bf16, rotate-half, inputs four times the L2 size) is
timed as RopeTime times it (measure.time_device on case.call), then its input sets are
rebuilt N times, each behind one more spacer allocation (the spacers stay, so the sets move
further up), and timed again. Each row prints the first input's address, the spacers'
total and the SM clocks seen; each variant first prints the launch autotuning picked for
its compiled kernels (inventory.of_first_call). Two levels inside one process would point
at placement; one level with the process-to-process levels of the A/A would point elsewhere.

Usage: python3 scripts/rope-placement.py [VARIANT...] (default: compile triton), on a GPU.
"""

from __future__ import annotations

import sys

import torch

from kernelwatch import environment, inventory, measure
from kernelwatch.workloads.rope import case as rope

PLACEMENTS = 8


def main(variants: list[str]) -> None:
    device = torch.device("cuda")
    rotate = 4 * measure.l2_cache_bytes(device)
    print(f"{'variant':<10} {'placement':>9} {'first input':>14} {'spacers MiB':>11} "
          f"{'median us':>10} {'cv %':>6} {'SM MHz':>11}")
    for variant in variants:
        case = rope.build_case("llama-3.1-8b", "rotate-half", "bfloat16", variant, device,
                               rotate_bytes=rotate)
        found = inventory.of_first_call(case.run, device)
        print(f"{variant}: launch {found.launch or 'not autotuned'}", flush=True)
        spacers, spacer_mib = [], 0
        for placement in range(PLACEMENTS):
            if placement:
                # 37 MiB more each time: no multiple of the allocator's 2 MiB pages, so the
                # new sets start at other offsets as well as other addresses
                spacers.append(torch.empty(37 << 20, dtype=torch.uint8, device=device))
                spacer_mib += 37
                case.input_sets = [case.fresh_inputs(seed=placement * 100 + i)
                                   for i in range(len(case.input_sets))]
            samples = measure.time_device(case.call, case.input_sets, device,
                                          method=case.device_method,
                                          monitor=environment.GpuMonitor())
            c = samples.conditions
            clocks = (f"{c.min_sm_clock_mhz}-{c.max_sm_clock_mhz}" if c and c.readings
                      else "-")
            print(f"{variant:<10} {placement:>9} {case.input_sets[0][0].data_ptr():>#14x} "
                  f"{spacer_mib:>11} {samples.median * 1e6:>10.2f} {samples.cv * 100:>6.2f} "
                  f"{clocks:>11}", flush=True)
        del spacers


if __name__ == "__main__":
    main(sys.argv[1:] or ["compile", "triton"])
