"""kernelwatch: asv benchmarks of isolated ML kernels across commits and PyTorch versions."""

__version__ = "0.1.0"
