"""Fixtures shared by the benchmark files. Benchmark files declare; kernelwatch measures."""

import torch


def device() -> torch.device:
    """The device benchmarks run on: the first CUDA GPU if torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
