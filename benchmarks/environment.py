"""Facts of each asv environment that machine info cannot hold, tracked as series so that
a change (another CUDA build, fewer threads, slower memory, a slower host) shows up in the
history."""

import torch

from kernelwatch import measure
from kernelwatch.errors import Unavailable

from .common import device, pin_cpu_threads


def dispatch_measured_here() -> None:
    """asv runs this checkout's benchmarks/ against each commit's own installed kernelwatch
    (docs/architecture.md): an older one lacks the host's dispatch, or took it in samples
    too short to see a shared host (before measure.DISPATCH_SAMPLE_SECONDS)."""
    if not (hasattr(measure, "dispatch_seconds")
            and hasattr(measure, "DISPATCH_SAMPLE_SECONDS")):
        raise Unavailable("the host's dispatch is measured by kernelwatch's own "
                          "measure.dispatch_seconds, which this commit's kernelwatch predates")


class Environment:
    version = "1"

    def track_torch_threads(self):
        """The threads a CPU kernel runs on (pinned: benchmarks/common.py); on a GPU
        machine, torch's default."""
        pin_cpu_threads(device())
        return torch.get_num_threads()

    track_torch_threads.unit = "threads"

    def track_cpu_affinity(self):
        """CPUs this process may run on (a container's cpuset or `taskset` narrows it)."""
        import os

        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0

    track_cpu_affinity.unit = "cpus"

    def track_cuda_runtime(self):
        """CUDA version of the torch build (e.g. 12.8); 0 for a CPU-only build."""
        return float(torch.version.cuda or 0)

    track_cuda_runtime.unit = "version"

    def track_copy_seconds_per_gib(self):
        """Seconds to copy 1 GiB on the benchmark device (read + write = 2 GiB moved).
        Recorded as time so asv's lower-is-better regression detection applies; the report
        turns it into the copy bandwidth that '% of copy bandwidth' refers to."""
        dev = device()
        nbytes = (1 << 30) if dev.type == "cuda" else (256 << 20)
        bandwidth = measure.copy_bandwidth(dev, nbytes)
        return (2 << 30) / bandwidth

    track_copy_seconds_per_gib.unit = "seconds"

    def track_matmul_seconds_per_tflop(self):
        """Seconds per TFLOP of a large square matmul on the benchmark device (bf16 8192^3
        on a GPU, fp32 1024^3 on the pinned CPU threads): the measured compute ceiling that
        the roofline's "% of matmul peak" refers to. Time, so lower is better as asv wants."""
        dev = device()
        pin_cpu_threads(dev)
        n, dtype = (8192, torch.bfloat16) if dev.type == "cuda" else (1024, torch.float32)
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        out = torch.empty_like(a)
        t = measure.time_callable(lambda: torch.mm(a, b, out=out), [()], dev, samples=10)
        tflop = 2 * n ** 3 / 1e12
        # its samples, not the median alone: `compare` tests them to say where the GPU's
        # own pace moved between two measurements (detect.GPU_FACT)
        return {"samples": [s / tflop for s in t.per_call_seconds],
                "number": t.calls_per_sample}

    track_matmul_seconds_per_tflop.unit = "seconds"

    def track_dispatch_seconds(self):
        """Seconds a Python caller pays for one tiny op on the benchmark device (an in-place
        add to a one-element tensor): the host's own cost per call. Caller times, latencies
        and compiles carry it and device times do not, so `kernelwatch compare` and the
        published change table say where such a series moved with it (a slower or busier
        host)."""
        return measure.dispatch_seconds(device()).for_asv()

    track_dispatch_seconds.unit = "seconds"
    # asv skips a benchmark whose setup raises NotImplementedError (in the benchmark itself
    # it is a failure); a setup of its own leaves the other facts' runs as they are
    track_dispatch_seconds.setup = dispatch_measured_here
