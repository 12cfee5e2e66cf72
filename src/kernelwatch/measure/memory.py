"""Peak memory of a region: CUDA allocated and reserved bytes, and the process's RSS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernelwatch.measure.timing import synchronize


@dataclass
class MemoryPeak:
    """Peak bytes during the measured calls. CUDA fields are 0 on the CPU."""

    cuda_allocated: int
    cuda_reserved: int
    rss: int


def _reset_rss_peak() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak covers only the
    # region measured and not the import of torch or the building of inputs.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_peak() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(run: Callable[[], object], device: torch.device) -> MemoryPeak:
    """Peak CUDA allocated/reserved bytes and peak process RSS while `run()` executes.

    Peaks include the live inputs, as a user of the kernel would see them.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    _reset_rss_peak()
    run()
    synchronize(device)
    if device.type == "cuda":
        return MemoryPeak(
            torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device),
            _rss_peak(),
        )
    return MemoryPeak(0, 0, _rss_peak())
