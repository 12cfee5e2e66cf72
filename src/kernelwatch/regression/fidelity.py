"""How far to trust a timed benchmark on this machine: its noise, its false alarms, and the
smallest slowdown its regression check catches.

A history is only as good as its noise floor. For each timed benchmark, `kernelwatch
fidelity` runs the benchmark's own asv class (setup, then the track method, as asv does) in
R fresh processes, because most of the noise between two commits is between processes
(allocation, frequency, placement), which samples inside one process cannot see. Each
process measures the benchmark once as it is (A) and once per injected slowdown (B: the
measuring core's test-only hook adds work worth x% of the kernel's own time), in a shuffled
order. Then, for neighbouring processes i and i+1:

- A/A: `detect.compare(A_i, A_i+1)` at each candidate factor: every flag is a false alarm;
- A/B: `detect.compare(A_i, B_i+1)`: a "worse" flag is a catch.

So each figure compares two processes, as two commits would be compared. The smallest
factor with no A/A alarm is the benchmark's threshold on this machine; the smallest injected
slowdown caught in at least 95% of pairs at that factor is its smallest detected change.
asv's own check is the same test at its fixed factor (1.10 in asv.conf.json), shown beside.
With `--pool K` each side pools K processes, judged beyond them as `compare` judges a pooled
series (detect.compare); asv's column tests the pooled samples alone, as `asv compare` does.
The thresholds are chosen on the same runs they are judged on; more runs make them honest.

Runner, statistics and output are apart: `measure_case` runs processes, `analyse` turns
samples into figures, and the views (report/fidelity.py) print them, as the site's page and
as markdown. Raw samples are saved, so a new analysis never needs a new run. Files are
never overwritten: one per run, newest wins.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError, unknown_name
from kernelwatch.regression import benchmark_classes, detect
from kernelwatch.results.files import require

if TYPE_CHECKING:
    from kernelwatch.results.rows import Row

# Candidate factors, smallest first: the threshold is the first with no A/A alarm.
FACTORS = (1.01, 1.02, 1.03, 1.05, 1.10, 1.20, 1.50)
ASV_FACTOR = detect.DEFAULT_FACTOR  # asv.conf.json's regressions_thresholds, asv compare's
CAUGHT_RATE = 0.95
RESULT_MARK = "KERNELWATCH-FIDELITY "  # the child's result line, apart from its other output


@dataclass(frozen=True)
class Target:
    """One timed series: an asv benchmark (workload.Class.track_name) at one parameter set."""

    workload: str
    cls: str
    track: str
    params: tuple[str, ...]

    @property
    def benchmark(self) -> str:
        return f"{self.workload}.{self.cls}.{self.track}"

    @property
    def key(self) -> str:
        return detect.series_key(self.benchmark, self.params)


def timed_tracks(repo: Path, workload: str) -> list[str]:
    """The track_ methods of a workload's time class that return timing samples (unit
    seconds), e.g. track_time and track_caller_time."""
    cls = benchmark_classes.load(repo, workload, workloads.get(workload).metrics["time"])
    return [name for name in dir(cls) if name.startswith("track_")
            and getattr(getattr(cls, name), "unit", getattr(cls, "unit", "")) == "seconds"]


def targets(repo: Path, workload: str, chosen: dict[str, list[str] | None],
            tracks: Sequence[str] | None, on_gpu: bool) -> list[Target]:
    """The series to check: the chosen parameter values (the quick case where none are
    chosen) of the workload's time class; its quick tracks, plus caller time on a GPU."""
    spec = workloads.get(workload)
    available = timed_tracks(repo, workload)
    if tracks:
        names = [t if t.startswith("track_") else f"track_{t}" for t in tracks]
        for name in names:
            if name not in available:
                raise unknown_name("timed track", name.removeprefix("track_"),
                                   [t.removeprefix("track_") for t in available], workload)
    else:
        quick = spec.suites[workloads.QUICK_SUITE][0].tracks or ("time",)
        names = [t for t in available if t.removeprefix("track_") in quick]
        if on_gpu and "track_caller_time" in available and "track_caller_time" not in names:
            names.append("track_caller_time")
    values = [chosen.get(p) or spec.quick[p] for p in spec.params]
    return [Target(workload, spec.metrics["time"], name, tuple(combo))
            for combo in itertools.product(*values) for name in names]


# ----------------------------------------------------------------------------- runner


def child_main(spec: dict) -> dict:
    """In a fresh process: the benchmark's setup, then each of its track methods once per
    slowdown (0 = as it is), in a shuffled order, as asv would call them. Returns samples per
    track and slowdown, or the reason the benchmark skips here."""
    from kernelwatch import measure

    cls = benchmark_classes.load(spec["repo"], spec["workload"], spec["cls"])
    params = spec["params"]
    bench = cls()
    try:
        bench.setup(*params)
    except NotImplementedError as e:  # asv's "skipped": Unavailable
        return {"skipped": str(e) or type(e).__name__}
    order = [(track, x) for track in spec["tracks"] for x in spec["fractions"]]
    random.Random(spec["seed"]).shuffle(order)
    samples: dict[str, dict[str, list[float]]] = {track: {} for track in spec["tracks"]}
    for track, fraction in order:
        os.environ[measure.INJECT_SLOWDOWN_ENV] = repr(fraction)
        samples[track][repr(fraction)] = getattr(bench, track)(*params)["samples"]
    os.environ.pop(measure.INJECT_SLOWDOWN_ENV, None)
    if hasattr(bench, "teardown"):
        bench.teardown(*params)
    return {"samples": samples}


@dataclass
class Measured:
    target: Target
    runs: list[dict[str, list[float]]] = field(default_factory=list)  # per process: {x: samples}
    skipped: str = ""
    seconds: float = 0.0


def measure_case(repo: Path, case: Sequence[Target], runs: int, slowdowns: Sequence[float],
                 *, timeout: float, progress: Callable[[str], None] = print) -> list[Measured]:
    """`runs` fresh processes of one case (one class at one parameter set), each measuring
    all of the case's tracks (see the module's docstring)."""
    first = case[0]
    results = [Measured(t) for t in case]
    t0 = time.perf_counter()
    for i in range(runs):
        spec = {"repo": str(repo), "workload": first.workload, "cls": first.cls,
                "tracks": [t.track for t in case], "params": list(first.params),
                "fractions": [0.0, *slowdowns], "seed": i}
        try:
            proc = subprocess.run([sys.executable, "-m", "kernelwatch.regression.fidelity",
                                   json.dumps(spec)],
                                  cwd=repo, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise KernelwatchError(
                f"{first.key}: one run took over {timeout:.0f} s; raise --timeout or pick "
                "a smaller case") from None
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)), None)
        if proc.returncode != 0 or line is None:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise KernelwatchError(f"{first.key}: run {i + 1} failed (exit "
                                   f"{proc.returncode}):\n{tail}")
        out = json.loads(line[len(RESULT_MARK):])
        if "skipped" in out:
            for m in results:
                m.skipped = out["skipped"]
            progress(f"  skipped: {out['skipped']}")
            break
        for m in results:
            m.runs.append(out["samples"][m.target.track])
        if (i + 1) % 5 == 0 or i + 1 == runs:
            progress(f"  {i + 1}/{runs} runs, {time.perf_counter() - t0:.0f} s")
    for m in results:
        m.seconds = time.perf_counter() - t0
    return results


def from_rows(rows: Sequence[Row], runs: Sequence[str]
              ) -> tuple[list[Measured], list[str]]:
    """The timed series an A/A recorded (one commit measured in separate runs, each filed
    under its own machine name in `runs`) as fidelity measurements, and what was left out
    and why. Each benchmark process's samples are one run as it is; no slowdown was
    injected, so they give a threshold and no catch rate. `rows` are results.rows' rows of
    that commit in one environment. Left out: a series of another unit (a kernel count), the
    environment's facts, a run's series whose samples do not split into its processes, and
    a series recorded in fewer than two of the runs (its pairs would all be inside one)."""
    per_run: dict[Target, dict[str, list[list[float]]]] = {}
    left_out = []
    for r in rows:
        if r.machine not in runs or r.unit != "seconds" or not r.samples:
            continue
        workload, cls, track = r.benchmark.split(".")
        if workload not in workloads.WORKLOADS:
            continue  # the environment's facts: not a kernel's time
        target = Target(workload, cls, track, tuple(r.params.values()))
        processes = max(r.processes, 1)
        each = detect.split_processes(r.samples, processes)
        if each is None:
            # the count kept is of processes, not of each one's samples: an uneven total
            # cannot be told apart, so guessing would pair halves of processes
            left_out.append(f"{target.key} in {r.machine}: its {len(r.samples)} samples do "
                            f"not split into its {processes} processes")
            continue
        per_run.setdefault(target, {})[r.machine] = each
    measured = []
    for target, by_run in per_run.items():
        if len(by_run) < 2:
            left_out.append(f"{target.key}: recorded in {', '.join(by_run)} alone; a "
                            "threshold needs the series in two runs or more")
            continue
        # Interleaved (run 1's first process, run 2's first, ..., run 1's second, ...), so
        # that neighbouring processes come from different runs: `compare` judges one run
        # against another, and processes of one run share its compile caches.
        in_order = [by_run[run] for run in runs if run in by_run]
        ordered = [p for group in itertools.zip_longest(*in_order) for p in group
                   if p is not None]
        m = Measured(target, [{"0.0": samples} for samples in ordered])
        try:
            _check_runs(m)
        except ValueError as e:
            left_out.append(str(e))
            continue
        measured.append(m)
    return measured, left_out


def cases(targets: Sequence[Target]) -> list[list[Target]]:
    """Targets grouped by class and parameters: one process measures a case's tracks."""
    grouped: dict[tuple, list[Target]] = {}
    for t in targets:
        grouped.setdefault((t.workload, t.cls, t.params), []).append(t)
    return list(grouped.values())


# ----------------------------------------------------------------------------- statistics


@dataclass
class Analysis:
    key: str
    pairs: int  # compared pairs of process sets
    pool: int  # processes per side of a pair
    median_seconds: float
    run_cv: float  # CV of the per-process medians: what two commits differ by with no change
    sample_cv: float  # median CV of the samples inside one process
    aa_alarms: dict[str, int]  # factor -> flagged A/A pairs (of runs - 1)
    caught: dict[str, dict[str, int]]  # slowdown -> factor -> pairs flagged worse
    achieved: dict[str, float]  # slowdown -> median in-process B/A ratio, minus 1
    threshold: float | None  # smallest factor with no A/A alarm
    smallest_caught: float | None  # smallest slowdown caught >= 95% at the threshold
    asv_aa_alarms: int
    asv_smallest_caught: float | None


def _smallest_caught(caught: dict[str, dict[str, int]], factor: float, pairs: int
                     ) -> float | None:
    hits = [float(x) for x, by_factor in caught.items()
            if pairs and by_factor[f"{factor:.2f}"] >= CAUGHT_RATE * pairs]
    return min(hits) if hits else None


def pooled(runs: list[dict[str, list[float]]], k: int) -> list[dict[str, list[float]]]:
    """Each window of `k` neighbouring processes as one run with their samples pooled: what
    a commit measured in `k` processes records (`kernelwatch run --processes k`: each
    process appends its samples). Windows i and i+k share no process, so pair i compares
    two disjoint sets of processes."""
    if k <= 1:
        return runs
    return [{x: [v for r in runs[i:i + k] for v in r[x]] for x in runs[0]}
            for i in range(len(runs) - k + 1)]


def analyse(measured: Measured, factors: Sequence[float] = FACTORS, pool: int = 1
            ) -> Analysis:
    """Figures from saved samples: no measuring happens here. With `pool` > 1 each side of
    a pair pools `pool` neighbouring processes (windows that share no process)."""
    if len(measured.runs) < 2 * pool:
        raise KernelwatchError(f"{measured.target.key}: needs at least {2 * pool} runs to "
                               f"pool {pool}, has {len(measured.runs)}")
    runs = pooled(measured.runs, pool)
    step = pool  # a window is compared with the next window that shares no process
    a = [r["0.0"] for r in runs]
    medians = [statistics.median(s) for s in a]
    slowdowns = [x for x in runs[0] if x != "0.0"]
    n_pairs = len(a) - step

    def judged(factors: Sequence[float], processes: tuple[int, int]
               ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        aa = {f"{f:.2f}": sum(detect.compare(a[i], a[i + step], factor=f,
                                             processes=processes).flag != ""
                              for i in range(n_pairs)) for f in factors}
        caught = {x: {f"{f:.2f}": sum(detect.compare(a[i], runs[i + step][x], factor=f,
                                                     processes=processes).flag == "worse"
                                      for i in range(n_pairs))
                      for f in factors}
                  for x in slowdowns}
        return aa, caught

    # kernelwatch's check judges pooled sides beyond their processes; plain asv compare's
    # has no such rule, so its columns pool the samples alone
    aa, caught = judged(factors, (pool, pool))
    asv_aa, asv_caught = judged([ASV_FACTOR], (0, 0))
    achieved = {x: statistics.median(statistics.median(r[x]) / statistics.median(r["0.0"])
                                     for r in measured.runs) - 1 for x in slowdowns}
    run_cv = statistics.stdev(medians) / statistics.fmean(medians)
    # No alarm seen in these pairs is not enough: 0 of 20 still allows a rate of ~14%. The
    # factor must also clear three standard deviations of the ratio of two runs' medians.
    threshold = next((f for f in factors if aa[f"{f:.2f}"] == 0
                      and f - 1 >= 3 * math.sqrt(2) * run_cv), None)
    return Analysis(
        key=measured.target.key, pairs=n_pairs, pool=pool,
        median_seconds=statistics.median(medians),
        run_cv=run_cv,
        sample_cv=statistics.median(statistics.stdev(s) / statistics.fmean(s) if len(s) > 1
                                    else 0.0 for s in a),
        aa_alarms=aa, caught=caught, achieved=achieved, threshold=threshold,
        smallest_caught=_smallest_caught(caught, threshold, n_pairs) if threshold else None,
        asv_aa_alarms=asv_aa[f"{ASV_FACTOR:.2f}"],
        asv_smallest_caught=_smallest_caught(asv_caught, ASV_FACTOR, n_pairs),
    )


# ----------------------------------------------------------------------------- files


def fidelity_dir(repo: Path) -> Path:
    return repo / ".kernelwatch" / "fidelity"


def new_path(repo: Path, machine: str) -> Path:
    """A file name no earlier run used: runs are never overwritten."""
    out = fidelity_dir(repo)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = out / f"{machine}-{stamp}.json", 1
    while path.exists():
        n += 1
        path = out / f"{machine}-{stamp}-{n}.json"
    return path


def save(path: Path, machine: str, measured: Sequence[Measured], env: dict) -> None:
    """The raw samples and the environment. Called after each case, so a run that is cut
    short keeps the cases it finished."""
    data = {"machine": machine, "date": time.time(), "environment": env,
            "targets": [{**asdict(m.target), "runs": m.runs, "skipped": m.skipped,
                         "seconds": m.seconds} for m in measured]}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(path)


def load_latest(repo: Path) -> dict[str, dict[str, tuple[Measured, dict]]]:
    """machine -> target key -> (the newest measurement of it, that file's environment).
    A file that does not parse, or holds samples `analyse` cannot use, is named and skipped
    whole: fidelity files only inform."""
    latest: dict[str, dict[str, tuple[float, Measured, dict]]] = {}
    for path in sorted(fidelity_dir(repo).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            machine, date, env, measured = _checked(data)
        except (OSError, ValueError) as e:
            print(f"kernelwatch: skipping unreadable fidelity file {path}: {e}; move it out "
                  f"of {fidelity_dir(repo)} (keep it if you want to repair it) to stop this "
                  "message", file=sys.stderr)
            continue
        seen = latest.setdefault(machine, {})
        for m in measured:
            if m.target.key not in seen or seen[m.target.key][0] <= date:
                seen[m.target.key] = (date, m, env)
    return {machine: {k: (m, env) for k, (_, m, env) in by_key.items()}
            for machine, by_key in latest.items()}


def _checked(data: object) -> tuple[str, float, dict, list[Measured]]:
    """(machine, date, environment, measurements) of a saved run, or ValueError saying the
    first thing in it that `save` never writes or `analyse` cannot use."""
    require(isinstance(data, dict), "not an object")
    require(isinstance(data.get("machine"), str) and data["machine"] != "",
            "machine is not a name")
    require(_finite_number(data.get("date")), "date is not a time")
    env = data.get("environment", {})
    require(isinstance(env, dict), "environment is not an object")
    require(isinstance(data.get("targets"), list), "targets is not a list")
    measured = []
    for i, t in enumerate(data["targets"], 1):
        require(isinstance(t, dict) and all(isinstance(t.get(k), str) for k in
                                            ("workload", "cls", "track", "skipped"))
                and isinstance(t.get("params"), list)
                and all(isinstance(v, str) for v in t["params"])
                and _finite_number(t.get("seconds")) and isinstance(t.get("runs"), list),
                f"target {i} is not a series (workload, cls, track, params, runs, skipped, "
                "seconds)")
        m = Measured(Target(t["workload"], t["cls"], t["track"], tuple(t["params"])),
                     t["runs"], t["skipped"], t["seconds"])
        if not m.skipped:
            _check_runs(m)
        measured.append(m)
    return data["machine"], data["date"], env, measured


def _finite_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _check_runs(m: Measured) -> None:
    """What `analyse` reads of a series: two runs or more, each with samples as it is
    ("0.0") and at each slowdown of the first, every sample a positive time."""
    key = m.target.key
    require(len(m.runs) >= 2, f"{key}: {len(m.runs)} runs, where a series needs 2 or more")
    for n, run in enumerate(m.runs, 1):
        require(isinstance(run, dict) and "0.0" in run,
                f'{key}: run {n} has no samples as it is ("0.0")')
        require(run.keys() == m.runs[0].keys(),
                f"{key}: run {n} has other slowdowns than run 1")
        for x, samples in run.items():
            try:
                float(x)
            except ValueError:
                raise ValueError(f"{key}: run {n} has a slowdown {x!r} that is not a "
                                 "fraction") from None
            require(isinstance(samples, list) and len(samples) > 0
                    and all(_finite_number(v) and v > 0 for v in samples),
                    f"{key}: run {n} at slowdown {x} is not a list of positive times")


def latest_analyses(repo: Path) -> dict[str, tuple[dict, list[Analysis], list[Measured]]]:
    """machine -> (environment, figures of each series' newest run, series that skipped)."""
    out = {}
    for machine, latest in load_latest(repo).items():
        measured = [m for m, _ in latest.values()]
        analyses = [analyse(m) for m in measured if not m.skipped and len(m.runs) >= 2]
        env = next(iter(latest.values()))[1]
        out[machine] = (env, analyses, [m for m in measured if m.skipped])
    return out


# What series_thresholds files for a series whose A/A alarmed at every factor tried.
UNHELD = math.inf


def series_thresholds(analyses: Sequence[Analysis]) -> dict[str, float]:
    """series key -> its threshold, or UNHELD where no factor tried held (`factor` says
    what such a series is judged at)."""
    return {a.key: a.threshold or UNHELD for a in analyses}


def factor(thresholds: dict[str, float] | None, key: str, processes: tuple[int, int],
           default: float) -> float:
    """The factor series `key` is judged at, two sides pooling `processes` each: its own
    threshold from `thresholds` (series_thresholds); `default` where fidelity did not
    measure it. A series no factor held in is judged at the widest tried, FACTORS[-1],
    where both sides are one process as its A/A's were: the default would be narrower than
    what its processes move by on their own (GPT-2 XL's time to first token over five runs
    on a lent H100: 1.63). Pooled sides keep `default`: their spread is not the A/A's, and
    the check asks a pooled change to clear every process of the other side."""
    own = (thresholds or {}).get(key)
    if own is None:
        return default
    if own == UNHELD:
        return FACTORS[-1] if max(processes) <= 1 else default
    return own


def thresholds(repo: Path) -> dict[str, dict[str, float]]:
    """machine -> series_thresholds of the newest fidelity runs on that machine."""
    return {machine: series_thresholds(analyses)
            for machine, (_, analyses, _) in latest_analyses(repo).items()}


if __name__ == "__main__":
    print(RESULT_MARK + json.dumps(child_main(json.loads(sys.argv[1]))), flush=True)
