"""How each device time was read, and what its case's device-time check found: the report's
"device clock" and "check" columns, and the note `kernelwatch compare` puts beside a time
measured on a throttled or shared GPU.

A workload's Time class records `track_time` (device time) and `track_caller_time`; its
DeviceCheck class records `track_device_check` for the same parameters: environment's flag
bits, 0 when the check found nothing wrong.
"""

from __future__ import annotations

from collections.abc import Callable

from kernelwatch import environment
from kernelwatch.results.rows import Row

TIME_SUFFIXES = ("Time.track_time", "Time.track_caller_time")
CHECK_SUFFIX = "DeviceCheck.track_device_check"
# measure's method names, as a reader says them.
LABELS = {"cuda-graph": "graph replay", "profiler-kernels": "kernel time (profiler)",
          "host-clock": "host clock", "cuda-events": "events around calls"}
# Time benchmarks whose version "1" read CUDA events around plain calls where the current
# version reads the profiler's kernel time.
EVENTS_BEFORE = {"llama_layer.LayerTime.track_time": "2", "vae.VaeTime.track_time": "2"}
# The report's own look at two medians, where no check ran: measure's margin.
DEVICE_OVER_CALLER_MARGIN = 0.03


def check_benchmark(benchmark: str) -> str | None:
    """The device-check benchmark of a Time benchmark ("rope.RopeTime.track_time" ->
    "rope.RopeDeviceCheck.track_device_check"), None for any other."""
    for suffix in TIME_SUFFIXES:
        if benchmark.endswith(suffix):
            return benchmark[: -len(suffix)] + CHECK_SUFFIX
    return None


def method(row: Row, method_for: Callable[[dict], str]) -> str:
    """The method a device time was read with: the host clock on a CPU; on a GPU the
    workload's method for the case (`method_for(params)`), or CUDA events for results of a
    version older than the profiler's kernel time."""
    if row.device_type == "cpu":
        return "host-clock"
    m = method_for(row.params)
    newer = EVENTS_BEFORE.get(row.benchmark)
    if m == "profiler-kernels" and newer and row.version is not None and row.version < newer:
        return "cuda-events"
    return m


def clock_labels(env_rows: list[Row], prefix: str,
                 method_for: Callable[[dict], str]) -> dict[tuple, str]:
    """{sorted params items: the reader's name of its device time's method} for a
    workload's (`prefix`) device times in one environment."""
    return {tuple(sorted(r.params.items())): LABELS[method(r, method_for)]
            for r in env_rows if r.benchmark.startswith(prefix)
            and r.benchmark.endswith(TIME_SUFFIXES[0]) and r.median is not None}


def check_text(check: float | str | None, device: float | str | None = None,
               caller: float | str | None = None, *, gpu: bool = True) -> str:
    """The check column: the check's flags in words ("clean" for none); where no check ran,
    "device > caller" if the medians say so, else "not checked". On a CPU the two times
    are one clock, and a difference between their processes is noise: nothing to say."""
    if not gpu:
        return ""
    if isinstance(check, int | float):
        return environment.describe_flags(check) or "clean"
    if check == "failed":
        return "check failed"
    if (isinstance(device, int | float) and isinstance(caller, int | float)
            and device > caller * (1 + DEVICE_OVER_CALLER_MARGIN)):
        return "device time over caller time (no check run)"
    return "not checked"


def flagged_checks(rows: list[Row]) -> dict[tuple, str]:
    """{(machine, env, commit, check benchmark, params items): flags in words} for every
    device check that found something: what compare notes beside a time of that case. The
    power cap alone is left out: an H200 under matrix load sits at it in every case
    measured (docs/findings/llama-layer-h200.md), so it would note every series."""
    return {(r.machine, r.env_name, r.commit, r.benchmark, tuple(r.params.items())):
            environment.describe_flags(r.value)
            for r in rows if r.benchmark.endswith(CHECK_SUFFIX) and r.value
            and int(r.value) & ~environment.POWER_CAPPED}


def note_for(flagged: dict[tuple, str], machine: str, env: str, commit: str, benchmark: str,
             params: tuple) -> str:
    """The flags of the device check of a Time benchmark's case at one commit, or ""."""
    check = check_benchmark(benchmark)
    return flagged.get((machine, env, commit, check, params), "") if check else ""
