"""Capture the environment a measurement ran in: torch, CUDA, driver, GPU, CPU, threads.

One capture function, used by the CLI (`kernelwatch env`, asv machine info) and by the
benchmarks. Every value is a string so it can go into asv's machine file unchanged.
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


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


def why_no_gpu() -> str | None:
    """None where this machine shows an NVIDIA GPU to CUDA (its driver's files, WSL's
    device or nvidia-smi, which a container started with GPUs gets; else torch, for a driver
    in a place not looked at), else why not. torch is imported only to confirm there is
    none."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={hidden.strip()!r} hides every device"
    if (Path("/proc/driver/nvidia/version").exists() or glob.glob("/dev/nvidia[0-9]*")
            or Path("/dev/dxg").exists() or shutil.which("nvidia-smi")
            or Path("/usr/lib/wsl/lib/nvidia-smi").exists()):
        return None
    import torch

    if torch.cuda.is_available():
        return None
    return ("no driver in /proc/driver/nvidia, no /dev/nvidia0 or /dev/dxg, no nvidia-smi, "
            "and torch sees no CUDA device")


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


def library_versions(dists: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of `dists` ("none" where absent), read without importing them."""
    from importlib import metadata

    out = {}
    for dist in dists:
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
    # The modules a variant's server import is made without (peft: Liger's import reaches
    # torchao, and so CUDA, through it): installed or not, they change what the forkserver
    # imports (read as distributions of the same names, as peft's is). Named here and in
    # fidelity's records; asv's machine file does not take them, so machines recorded
    # before keep their facts.
    from kernelwatch import workloads

    info.update(library_versions(workloads.server_imports_made_without()))
    return info


# ----------------------------------------------------------------------------- GPU hygiene
# What the GPU was doing while a benchmark timed it: its SM clock, why the clock was held
# down, and whether another process was computing on it. A slower result measured on a
# throttled or shared GPU is a false regression; the readings say which results those are.

# NVML's clock-event reasons (nvmlClocksEventReason*) that slow a kernel down. Idle,
# application-clock settings, sync boost and display clocks are normal states, not listed.
THROTTLE_REASONS = {0x8: "hardware slowdown", 0x20: "software thermal slowdown",
                    0x40: "hardware thermal slowdown", 0x80: "hardware power brake"}
# The software power cap: a GPU under full matrix load sits at its power limit on purpose,
# so it is reported apart from the slowdowns above.
POWER_CAP_REASON = 0x4

# Bits of a device-time check (benchmarks' track_device_check; 0: nothing to report).
DEVICE_OVER_CALLER = 1  # the device time exceeded the caller's time beyond noise
THROTTLED = 2  # a slowdown in THROTTLE_REASONS was active during the samples
POWER_CAPPED = 4  # the software power cap held the clock down during the samples
SHARED = 8  # another process computed on the GPU during the samples
UNOBSERVED = 16  # neither NVML nor nvidia-smi could be read: the conditions are unknown
FLAG_WORDS = {DEVICE_OVER_CALLER: "device time over caller time",
              THROTTLED: "throttled", POWER_CAPPED: "power-capped",
              SHARED: "shared with another process", UNOBSERVED: "GPU not observed"}


def describe_flags(value: float | int | None) -> str:
    """A check's bits in words ("" for none): what the report and compare print."""
    if value is None:
        return ""
    bits = int(value)
    return ", ".join(word for bit, word in FLAG_WORDS.items() if bits & bit)


@dataclass
class GpuReading:
    """One look at the GPU. `other_processes` is None where this process's own entry is
    missing from the GPU's list (another PID namespace): then nobody can be counted."""

    sm_clock_mhz: int
    max_sm_clock_mhz: int
    reasons: int  # NVML's bitmask of active clock-event reasons
    other_processes: int | None
    source: str  # "nvml" or "nvidia-smi"


def _others(pids: list[int]) -> int | None:
    """Processes other than this one among the GPU's compute processes. Called while this
    process holds a CUDA context, so an empty list, or one without our PID, means the
    list cannot be matched to us; only a longer list still proves others are there."""
    own = os.getpid()
    if own in pids:
        return len(set(pids) - {own})
    return len(pids) - 1 if len(pids) > 1 else None


def _gpu_index() -> int:
    """NVML's index of the GPU torch calls device 0: the first of CUDA_VISIBLE_DEVICES
    when that names indices, else 0."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


_nvml_handle: list = []  # [handle] once NVML answered in this process, [None] if it cannot


def _nvml_reading() -> GpuReading | None:
    if not _nvml_handle:
        try:
            import pynvml

            pynvml.nvmlInit()
            _nvml_handle.append(pynvml.nvmlDeviceGetHandleByIndex(_gpu_index()))
        except Exception:  # no nvidia-ml-py, no driver library, no GPU: fall back
            _nvml_handle.append(None)
    handle = _nvml_handle[0]
    if handle is None:
        return None
    import pynvml

    try:
        clock = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
        max_clock = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        get_reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
        reasons = int(get_reasons(handle))
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:  # an NVML call this driver does not offer
        return None
    return GpuReading(int(clock), int(max_clock), reasons, _others([p.pid for p in procs]),
                      "nvml")


def _smi_reading() -> GpuReading | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    index = str(_gpu_index())

    def query(*args: str) -> list[str] | None:
        try:
            out = subprocess.run([exe, "-i", index, *args, "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    # Drivers from 535 name the field clocks_event_reasons; older ones clocks_throttle_reasons.
    for field in ("clocks_event_reasons.active", "clocks_throttle_reasons.active"):
        lines = query(f"--query-gpu=clocks.sm,clocks.max.sm,{field}")
        if lines:
            break
    else:
        return None
    try:
        clock, max_clock, reasons = (v.strip() for v in lines[0].split(","))
        reading = GpuReading(int(clock), int(max_clock), int(reasons, 16), None, "nvidia-smi")
    except ValueError:
        return None
    pids = query("--query-compute-apps=pid")
    if pids is not None:
        reading.other_processes = _others([int(p) for p in pids if p.isdigit()])
    return reading


def gpu_reading() -> GpuReading | None:
    """The GPU's clock, clock-event reasons and other processes now: from NVML
    (nvidia-ml-py) where it answers, else from nvidia-smi; None where neither does."""
    return _nvml_reading() or _smi_reading()


@dataclass
class GpuConditions:
    """What a run of readings saw: the lowest and highest SM clock, every clock-event
    reason that was active at some reading, and the most other processes seen."""

    readings: int
    min_sm_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    clock_ceiling_mhz: int | None = None
    reasons: int = 0
    other_processes: int | None = None
    source: str = ""

    @property
    def flags(self) -> int:
        if not self.readings:
            return UNOBSERVED
        flags = THROTTLED if any(self.reasons & bit for bit in THROTTLE_REASONS) else 0
        flags |= POWER_CAPPED if self.reasons & POWER_CAP_REASON else 0
        return flags | (SHARED if self.other_processes else 0)

    def describe(self) -> str:
        if not self.readings:
            return "GPU conditions not observed (no NVML, no nvidia-smi)"
        slowdowns = [w for bit, w in THROTTLE_REASONS.items() if self.reasons & bit]
        if self.reasons & POWER_CAP_REASON:
            slowdowns.append("software power cap")
        others = ("unknown (this process is not in the GPU's list)"
                  if self.other_processes is None else str(self.other_processes))
        return (f"SM clock {self.min_sm_clock_mhz}-{self.max_sm_clock_mhz} MHz of "
                f"{self.clock_ceiling_mhz}; clock-event reasons {self.reasons:#x} "
                f"({', '.join(slowdowns) or 'no slowdown'}); other processes on the GPU: "
                f"{others}; {self.readings} readings ({self.source})")


class GpuMonitor:
    """Readings taken between a benchmark's samples (never inside one). nvidia-smi costs
    tens of milliseconds a call, so without NVML a reading is taken at most once a second."""

    def __init__(self) -> None:
        self.readings: list[GpuReading] = []
        self._last_smi = -1e9

    def sample(self) -> None:
        import time

        reading = _nvml_reading()
        if reading is None and time.monotonic() - self._last_smi >= 1.0:
            self._last_smi = time.monotonic()
            reading = _smi_reading()
        if reading is not None:
            self.readings.append(reading)

    def conditions(self) -> GpuConditions:
        rs = self.readings
        if not rs:
            return GpuConditions(0)
        counts = [r.other_processes for r in rs if r.other_processes is not None]
        reasons = 0
        for r in rs:
            reasons |= r.reasons
        return GpuConditions(len(rs), min(r.sm_clock_mhz for r in rs),
                             max(r.sm_clock_mhz for r in rs),
                             max(r.max_sm_clock_mhz for r in rs), reasons,
                             max(counts) if counts else None, rs[-1].source)


def load_transformer_engine_first() -> None:
    """Import TransformerEngine now, where it is installed and a GPU is there, before torch
    loads its own cuDNN. TE loads cuDNN by its file name; once torch has loaded its own (any
    attention call), TE's import fails with "libcudnn_cnn.so.9: undefined symbol" (seen on
    the H200), so a TE case after a torch case in one process fails. The test session, which
    runs several cases in one process, calls this at its start; asv's benchmark processes
    build one case each and import TE first anyway."""
    import torch

    if torch.cuda.is_available():
        with contextlib.suppress(Exception):
            import transformer_engine.pytorch  # noqa: F401
