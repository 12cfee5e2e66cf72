"""Capture the environment a measurement ran in: torch, CUDA, driver, GPU, CPU, threads.

One capture function, used by the CLI (`kernelwatch env`, asv machine info) and by the
benchmarks. Every value is a string so it can go into asv's machine file unchanged.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def nvidia_smi() -> dict[str, str]:
    """GPU name, driver and max clocks from nvidia-smi, or {} where there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    fields = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem"
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if not out:
        return {}
    name, driver, mem, sm_clock, mem_clock = (v.strip() for v in out[0].split(","))
    return {
        "gpu": name,
        "gpu_count": str(len(out)),
        "driver": driver,
        "gpu_memory_mib": mem,
        "gpu_max_sm_clock_mhz": sm_clock,
        "gpu_max_mem_clock_mhz": mem_clock,
    }


def host() -> dict[str, str]:
    """Facts of the machine, independent of which torch is installed."""
    info = {
        "cpu": cpu_model(),
        "num_cpu": str(os.cpu_count() or 0),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "ram": str(ram_bytes()),
        "gpu": "none",
        "driver": "none",
    }
    info.update(nvidia_smi())
    return info


def torch_facts() -> dict[str, str]:
    """Facts of the torch in this interpreter: version, CUDA build, threads, visible GPU."""
    import torch

    info = {
        "torch": torch.__version__.split("+")[0],
        "torch_build": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "threads": str(torch.get_num_threads()),
        "cpu_affinity": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else 0),
        "python": platform.python_version(),
    }
    info.update(library_versions())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cuda_device"] = props.name
        info["sm_count"] = str(props.multi_processor_count)
        info["capability"] = f"{props.major}.{props.minor}"
    return info


# Libraries a workload's variants run on, recorded beside torch: an onnxruntime or torchao
# upgrade can move a number as much as a torch one.
LIBRARIES = ("transformers", "onnxruntime", "onnx", "torchao", "triton", "llmcompressor")


def library_versions() -> dict[str, str]:
    """Installed versions of LIBRARIES ("none" where absent), read without importing them."""
    from importlib import metadata

    out = {}
    for dist in LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "none"
    return out


def capture() -> dict[str, str]:
    """Everything kernelwatch records with a run."""
    info = host()
    try:
        info.update(torch_facts())
    except ImportError:
        info["torch"] = "not installed"
    return info
