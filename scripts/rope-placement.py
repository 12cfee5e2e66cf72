"""Does where RoPE's inputs land in device memory move its device time? In one process,
the suite's RoPE case (llama-3.1-8b, bf16, rotate-half, inputs four times the L2 size) is
timed as RopeTime times it, then its input sets are rebuilt N times, each behind a spacer
allocation of a different size so they land at other addresses, and timed again. Two
levels inside one process would point at placement; one level with the process-to-process
levels of the A/A would point elsewhere (clocks: each row prints the SM clocks seen).

Usage: python3 scripts/rope-placement.py [VARIANT...] (default: compile triton), on a GPU.
"""

from __future__ import annotations

import sys

import torch

from kernelwatch import environment, measure
from kernelwatch.workloads.rope import case as rope

PLACEMENTS = 8


def main(variants: list[str]) -> None:
    device = torch.device("cuda")
    rotate = 4 * measure.l2_cache_bytes(device)
    print(f"{'variant':<10} {'placement':>9} {'spacer MiB':>10} {'median us':>10} "
          f"{'cv %':>6} {'SM MHz':>11}")
    for variant in variants:
        case = rope.build_case("llama-3.1-8b", "rotate-half", "bfloat16", variant, device,
                               rotate_bytes=rotate)
        spacers = []
        for placement in range(PLACEMENTS):
            if placement:
                # a spacer of 1..PLACEMENTS x 37 MiB ahead of the new sets moves them by
                # amounts that are no multiple of the allocator's 2 MiB pages' common strides
                spacer_mib = 37 * placement
                spacers.append(torch.empty(spacer_mib << 20, dtype=torch.uint8, device=device))
                case.input_sets = [case.fresh_inputs(seed=placement * 100 + i)
                                   for i in range(len(case.input_sets))]
            else:
                spacer_mib = 0
            monitor = environment.GpuMonitor()
            samples = measure.time_device(case.fn, case.input_sets, device,
                                          method=case.device_method, monitor=monitor)
            c = samples.conditions
            clocks = (f"{c.min_sm_clock_mhz}-{c.max_sm_clock_mhz}" if c and c.readings
                      else "-")
            print(f"{variant:<10} {placement:>9} {spacer_mib:>10} "
                  f"{samples.median * 1e6:>10.2f} {samples.cv * 100:>6.2f} {clocks:>11}",
                  flush=True)
        del spacers


if __name__ == "__main__":
    main(sys.argv[1:] or ["compile", "triton"])
