"""Is a change between two measurements real? The one place that decides.

A change is flagged when it is both statistically significant and large enough to matter:
- significant: asv's own test on the recorded samples (`asv._stats.is_different`: a
  Mann-Whitney U test at p < 0.002 where the samples allow it, else non-overlapping 99%
  confidence intervals from `asv_runner.statistics.compute_stats`), so kernelwatch and
  `asv compare` agree on what counts as different;
- large: the ratio of medians beyond `factor` (default 1.10, asv.conf.json's
  regressions_threshold), because runs on a shared machine move by a few percent between
  processes, which within-run samples cannot see.
- beyond its processes: where both sides pool several benchmark processes (a suite's
  `processes=K`), every process's median on one side lies beyond every one on the other.
  A process can sit at its own level for its whole life (the same kernels and launch of RoPE
  8B read 16.9-18.2 us per process on an H100: docs/findings/gpu-history-h200.md), and
  asv's test on the pooled samples counts that as significant; the process is the unit
  that varies, as pyperf treats it.
A value recorded once (first run, cold compile) has no samples to test: it is shown, never
flagged. How often this flags pure noise, and the smallest change it catches, are measured by
the measurement-truth work; its figures belong beside these defaults.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_FACTOR = 1.10
# Units where lower is better, so a ratio above the factor is a regression. Other series
# (token match, counts) are shown, never flagged.
FLAGGED_UNITS = ("seconds", "bytes")
P_THRESHOLD = 0.002
# The machine's own facts (copy bandwidth, threads): shown, never a regression of the code.
MACHINE_FACTS = "environment."
# A kernel count that moves at all is a change (a lost or a new fusion), however little
# the time moved: more kernels is worse.
KERNEL_COUNT = ".track_kernel_count"
NOT_COMPARABLE = "not comparable"
# A device time that moved with the same kernels of the same code in the same environment,
# launched with another configuration inductor's autotuning picked: the pick varies
# between runs of one commit with fresh compile caches (the processes of one run share its
# cache, and so its pick), and the time follows the pick. In five fresh-cache runs of RoPE
# 8B `compile` on a lent H100 (docs/findings/gpu-history-h200.md), one generated code
# throughout, runs with the same picks agreed within 1.001x and the three picks read
# 16.9, 18.0 and 21.9 us (1.30x); issue 34 saw up to 1.73x between runs on the H200. So
# such a change is the pick's: shown with it, not counted. A move beyond LAUNCH_BOUND
# counts whatever the pick.
LAUNCH = "launch"
LAUNCH_BOUND = 2.0
# Facts of the machine a launch is picked for: a move is autotuning's pick only where these
# agree at both measurements (two machine names of an A/A, or one name whose GPU or driver
# changed between commits).
HARDWARE_FACTS = ("gpu", "driver", "cpu", "arch")
# The series a launch moves: the device's own time of a call, as the time family reads it
# (graph replay, events) and as the kernel-time family does (the profiler's busy time).
# What a caller pays has a host part the launch does not explain.
DEVICE_TIME = (".track_time", ".track_kernel_time")
# The host's own cost per call, one of the machine's facts (measure.dispatch_seconds): a
# series the host paces moves with it. On a lent H100 whose host was slower than on an
# earlier lease, caller times, GPT-2's decode steps and GPTQ's latencies moved by up to
# 2.65x, while the device times held within 1.04 but for one that moves with autotuning's
# pick (docs/findings/gpu-history-h200.md, sixth lease of 2026-12-07).
HOST_FACT = MACHINE_FACTS + "Environment.track_dispatch_seconds"
# The GPU's own pace, one of the machine's facts: a large bf16 matmul's device time per
# TFLOP. Where it moves between two measurements the GPU did (its clocks, a neighbour): on
# a lent H100 one process read it 1.095x slower than four others that held within 1.011,
# and GPT-2's series in it moved 1.33-1.88x (docs/findings/gpu-history-h200.md,
# 2026-12-08). Said, like the host, not counted.
GPU_FACT = MACHINE_FACTS + "Environment.track_matmul_seconds_per_tflop"


def series_key(benchmark: str, values: Sequence[str]) -> str:
    """`workload.Class.track_x(value, value, ...)`, the parameter values in their declared
    order: how a series is named wherever a per-series threshold is kept or looked up
    (`kernelwatch fidelity`, `kernelwatch compare`, the site's change table)."""
    return f"{benchmark}({', '.join(values)})"


@dataclass(frozen=True)
class Change:
    """`after` against `before` for one series; lower is better (seconds, bytes)."""

    before: float
    after: float
    significant: bool
    flag: str  # "worse", "better" or ""
    # Significant and beyond the factor, but some process of one side reads like one of
    # the other's: not flagged (`compare`'s rule beyond its processes).
    within_processes: bool = False

    @property
    def ratio(self) -> float:
        if not self.before:
            return 1.0 if not self.after else float("inf")
        return self.after / self.before


def split_processes(samples: Sequence[float], processes: int) -> list[list[float]] | None:
    """Each process's samples, where `samples` pool `processes` benchmark processes in
    order, the same number each (the measuring core's fixed count); None where they do not
    split so (no samples, no count kept, or a total the count does not divide)."""
    if processes < 1 or not samples or len(samples) % processes:
        return None
    n = len(samples) // processes
    return [list(samples[i * n:(i + 1) * n]) for i in range(processes)]


def process_medians(samples: Sequence[float], processes: int) -> list[float] | None:
    """The median of each process's samples (split_processes); None for one process or
    samples that do not split."""
    each = split_processes(samples, processes) if processes >= 2 else None
    return [statistics.median(s) for s in each] if each else None


def compare(before: list[float], after: list[float], *, factor: float = DEFAULT_FACTOR,
            p_threshold: float = P_THRESHOLD, processes: tuple[int, int] = (0, 0)) -> Change:
    """Compare two sample sets (one value each is allowed: never significant). `processes`:
    how many benchmark processes each pools (0 where not known)."""
    from asv import _stats
    from asv_runner.statistics import compute_stats

    b, a = statistics.median(before), statistics.median(after)
    significant = False
    if len(before) >= 2 and len(after) >= 2:
        stats_b = compute_stats(before, 1)[1]
        stats_a = compute_stats(after, 1)[1]
        significant = bool(_stats.is_different(before, after, stats_b, stats_a,
                                               p_threshold=p_threshold))
    flag = ""
    if significant and b > 0:
        if a > b * factor:
            flag = "worse"
        elif a < b / factor:
            flag = "better"
    levels_b = process_medians(before, processes[0])
    levels_a = process_medians(after, processes[1])
    if flag and levels_b and levels_a:
        beyond = (min(levels_a) > max(levels_b) if flag == "worse"
                  else max(levels_a) < min(levels_b))
        if not beyond:
            return Change(b, a, significant, "", within_processes=True)
    return Change(b, a, significant, flag)


def host_paced(benchmark: str, device_type: str, method: str | None) -> bool:
    """Whether a series' seconds carry the host's own work: every time on a CPU; on a GPU
    every time but the device's own (a device time read by graph replay or the profiler,
    `method`, and the kernel-time family). The machine's facts are none."""
    from kernelwatch.time_methods import DEVICE_METHODS

    if benchmark.startswith(MACHINE_FACTS):
        return False
    if device_type == "cpu":
        return True
    return not (benchmark.endswith(".track_kernel_time")
                or (benchmark.endswith(".track_time") and method in DEVICE_METHODS))


def host_ratio(before: Sequence[float], after: Sequence[float],
               factor: float = DEFAULT_FACTOR) -> float | None:
    """How far the host's dispatch (HOST_FACT's samples at two measurements) moved, where
    it moved as a time would be flagged (significant, beyond `factor`); None where not."""
    change = compare(list(before), list(after), factor=factor)
    return change.ratio if change.flag else None


def same_hardware(before: dict, after: dict) -> bool:
    """Whether two measurements' machine facts (a result's `env`) name the same hardware."""
    return all(before.get(k) == after.get(k) for k in HARDWARE_FACTS)


def judge(benchmark: str, unit: str, before: Sequence[float], after: Sequence[float], *,
          factor: float = DEFAULT_FACTOR, versions: tuple[str | None, str | None] = (None, None),
          launch_moved: bool = False, processes: tuple[int, int] = (0, 0)) -> Change:
    """The one rule for whether a series changed between two measurements, wherever a
    change is shown (compare, the site's change table, the versions page): measured by
    different benchmark code (`versions` differ) is NOT_COMPARABLE; a kernel count is
    worse or better whenever it moves; times and bytes are `compare`d at `factor` (and
    beyond their processes, `processes` the count each side pools); any other
    series, and the machine's own facts, are compared and never flagged. A device time that
    would be worse or better, by at most LAUNCH_BOUND, while only the launch of the same
    kernels moved in one environment (`launch_moved`: kernelwatch.inventory.only_launch_moved
    of the case's inventories) is LAUNCH."""
    b, a = statistics.median(before), statistics.median(after)
    if versions[0] and versions[1] and versions[0] != versions[1]:
        return Change(b, a, False, NOT_COMPARABLE)
    if benchmark.endswith(KERNEL_COUNT):
        return Change(b, a, a != b, "worse" if a > b else "better" if a < b else "")
    change = compare(list(before), list(after), factor=factor, processes=processes)
    if unit not in FLAGGED_UNITS or benchmark.startswith(MACHINE_FACTS):
        return Change(change.before, change.after, change.significant, "")
    if launch_moved and change.flag and benchmark.endswith(DEVICE_TIME) and \
            max(change.ratio, 1 / change.ratio) <= LAUNCH_BOUND:
        return Change(change.before, change.after, change.significant, LAUNCH)
    return change
