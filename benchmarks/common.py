"""Fixtures shared by the benchmark files. Benchmark files declare; kernelwatch measures."""

import torch


def device() -> torch.device:
    """The device benchmarks run on: the first CUDA GPU if torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def l2_bytes(dev: torch.device) -> int:
    if dev.type != "cuda":
        return 0
    return getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 64 << 20)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
