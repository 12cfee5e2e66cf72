"""`kernelwatch bisect GOOD BAD`: the first commit (of kernelwatch or of a target library), or
the first version of an ordered list, at which one series got worse than at GOOD.

The search is git bisect's over ordered points, GOOD first and BAD last, given a
`measure(point) -> Measured` callable (the CLI's runs `kernelwatch run` for one point, or
reads what is already recorded). A point is bad when `compare`'s own test (detect.compare:
asv's significance test on the samples, and the ratio of medians beyond the series'
threshold) says it is worse than GOOD; a failure (a build that fails, a timeout) is bad with
`failed_is_bad`, else it is skipped as git bisect skips, and the search tries the untested
point nearest the middle. GOOD and BAD are measured first, then at most ceil(log2 n) points
between them for n commits in GOOD..BAD: ceil(log2 n) + 2 in all.

The bar a point must clear is the series' threshold, or the geometric middle of GOOD and BAD
where that is higher (BAD 10x slower: a point must be 3.2x slower). Seen on a busy 2-core
machine: a documentation-only commit measured 1.27x GOOD in three processes, significant and
beyond 1.10, while BAD was 10.5x; judged at 1.10 alone it was named the culprit. A regression
many times the threshold is what the bisect is after, and between-process noise beyond an
uncalibrated threshold must not outvote it. Points pooled from several processes are judged
beyond their processes too, as `compare` judges them.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError, check_choices
from kernelwatch.regression import benchmark_classes, detect


@dataclass(frozen=True)
class Measured:
    """One point's result for the series: its samples (or one value), or why there is none
    (it failed, it was skipped, or it cannot be measured here)."""

    point: str
    samples: tuple[float, ...] = ()
    failed: bool = False  # no value: `skipped` says whether it ran and was skipped
    reused: bool = False  # recorded before this bisect: not measured again
    reason: str = ""
    skipped: bool = False  # the code under test could not run there (never a slowdown)
    processes: int = 0  # benchmark processes the samples pool, in order (0: not known)

    @property
    def median(self) -> float | None:
        if not self.samples:
            return None
        s = sorted(self.samples)
        return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


@dataclass(frozen=True)
class Verdict:
    measured: Measured
    bad: bool | None  # None: could not be judged (failed, not --failed-is-bad): skipped
    change: detect.Change | None = None


@dataclass
class Outcome:
    points: list[str]
    good: Verdict
    verdicts: list[Verdict] = field(default_factory=list)  # in the order measured, GOOD first
    culprit: str | None = None  # None: BAD is not worse than GOOD
    parent: str | None = None  # the last good point before the culprit
    candidates: list[str] = field(default_factory=list)  # several, where skips left a gap
    bar: float = detect.DEFAULT_FACTOR  # the ratio to GOOD a point had to clear

    @property
    def bound(self) -> int:
        return max_points(len(self.points) - 1)


def max_points(n: int) -> int:
    """Points measured at most for n commits after GOOD (GOOD and BAD included)."""
    return math.ceil(math.log2(n)) + 2 if n > 1 else 2


def search(points: Sequence[str], measure: Callable[[str], Measured], *, factor: float,
           failed_is_bad: bool = False,
           nearest_good: Callable[[Sequence[str]], str | None] | None = None) -> Outcome:
    """Bisect `points` (GOOD first, BAD last, in the order the history runs). A point that
    failed is skipped (bad with `failed_is_bad`); one that was skipped or cannot be measured
    is always skipped. `nearest_good(points)` names the point after GOOD that would run, for
    the refusal when GOOD itself gives nothing."""
    if len(points) < 2:
        raise KernelwatchError("bisect needs GOOD and a later BAD")
    good = measure(points[0])
    if good.failed or not good.samples:
        why = good.reason or "it failed, or measured nothing"
        near = nearest_good(points) if nearest_good else None
        hint = (f"the nearest later point that would run: {near} (`kernelwatch bisect "
                f"{near[:12]} {points[-1][:12]} ...`)" if near else
                "no later point is known to run: choose a GOOD where the series runs")
        raise KernelwatchError(f"GOOD ({points[0][:12]}) has no result for the series: "
                               f"{why}; {hint}")
    outcome = Outcome(list(points), Verdict(good, False))
    outcome.verdicts.append(outcome.good)

    def judge(i: int) -> bool | None:
        m = measure(points[i])
        if m.failed or not m.samples:
            verdict = Verdict(m, True if failed_is_bad and not m.skipped else None)
        else:
            change = detect.compare(list(good.samples), list(m.samples), factor=outcome.bar,
                                    processes=(good.processes, m.processes))
            verdict = Verdict(m, change.flag == "worse", change)
        outcome.verdicts.append(verdict)
        return verdict.bad

    outcome.bar = factor
    last = judge(len(points) - 1)
    if last is None:
        bad = outcome.verdicts[-1].measured
        how = "was skipped" if bad.skipped else "failed to measure"
        raise KernelwatchError(
            f"BAD ({points[-1][:12]}) {how}: {bad.reason or 'no reason recorded'}; "
            + ("--failed-is-bad counts a failure as a slowdown, or " if not bad.skipped
               else "") + "choose a BAD where the series runs")
    if not last:
        return outcome
    change = outcome.verdicts[-1].change
    if change is not None:
        outcome.bar = max(factor, math.sqrt(change.ratio))
    lo, hi, skipped = 0, len(points) - 1, set()
    while hi - lo > 1:
        untested = [i for i in range(lo + 1, hi) if i not in skipped]
        if not untested:
            outcome.candidates = list(points[lo + 1:hi + 1])
            break
        middle = (lo + hi) / 2
        mid = min(untested, key=lambda i: (abs(i - middle), i))
        verdict = judge(mid)
        if verdict is None:
            skipped.add(mid)
        elif verdict:
            hi = mid
        else:
            lo = mid
    outcome.culprit, outcome.parent = points[hi], points[lo]
    return outcome


def ratio_interval(before: Sequence[float], after: Sequence[float]
                   ) -> tuple[float, float, float]:
    """after/before as (ratio of medians, low, high): the 99% confidence intervals of both
    medians (asv's own, from the samples), combined the conservative way."""
    from asv_runner.statistics import compute_stats

    b, sb = compute_stats(list(before), 1)
    a, sa = compute_stats(list(after), 1)
    if len(before) < 2 or len(after) < 2 or not sb or not sa:
        return a / b, a / b, a / b
    return a / b, sa["ci_99_a"] / sb["ci_99_b"], sa["ci_99_b"] / sb["ci_99_a"]


# ----------------------------------------------------------------------------- the series


@dataclass(frozen=True)
class Series:
    workload: str
    family: str  # metric family (a benchmark class)
    benchmark: str  # workload.Class.track_name
    params: dict[str, str]  # every parameter, one value each, in PARAMS order

    @property
    def key(self) -> str:
        return detect.series_key(self.benchmark, list(self.params.values()))

    def selection(self) -> dict:
        """The RunRequest fields that select exactly this series."""
        return {"workload": self.workload, "metrics": [self.family],
                "tracks": [self.benchmark.rsplit(".track_", 1)[1]],
                "params": [f"{name}={value}" for name, value in self.params.items()]}


def _tracks_of(repo: Path, workload: str, cls_name: str) -> list[str]:
    """The track_ names of a benchmark class of the checkout's benchmarks/."""
    cls = benchmark_classes.load(repo, workload, cls_name)
    return sorted(n.removeprefix("track_") for n in dir(cls) if n.startswith("track_"))


def resolve_series(repo: Path, workload: str, chosen: dict[str, list[str]],
                   metrics: Sequence[str] | None, track: str) -> Series:
    """The one series a bisect follows; bad input naming the fix when the choices match
    none or several."""
    spec = workloads.get(workload)
    check_choices(spec.params, chosen, where=workload)  # before any point is measured
    params = {}
    for name, valid in spec.params.items():
        values = chosen.get(name) or valid
        if len(values) != 1:
            raise KernelwatchError(
                f"bisect follows one series; {workload}'s {name} has {len(values)} values "
                f"here: choose one with --param {name}=VALUE ({', '.join(values)})")
        params[name] = values[0]
    families = list(metrics or spec.metrics)
    for family in families:
        if family not in spec.metrics:
            raise KernelwatchError(f"unknown metric {family!r} for {workload}; valid metrics: "
                                   f"{', '.join(spec.metrics)}")
    found = [(f, spec.metrics[f]) for f in families
             if track in _tracks_of(repo, workload, spec.metrics[f])]
    if not found:
        every = sorted({t for f in families
                        for t in _tracks_of(repo, workload, spec.metrics[f])})
        raise KernelwatchError(f"no {workload} benchmark has a track {track!r}: choose one "
                               f"with --track ({', '.join(every)})")
    if len(found) > 1:
        raise KernelwatchError(
            f"the track {track!r} is in several {workload} benchmarks "
            f"({', '.join(c for _, c in found)}); choose one with --metric "
            f"({', '.join(f for f, _ in found)})")
    family, cls = found[0]
    return Series(workload, family, f"{workload}.{cls}.track_{track}", params)


def find(rows: Sequence, machine: str, commit: str, series: Series,
         env: Callable[[object], bool]) -> object | None:
    """The recorded row of the series at (machine, commit) in an environment `env` admits."""
    for r in rows:
        if (r.machine == machine and r.commit == commit and r.benchmark == series.benchmark
                and r.params == series.params and env(r)
                and (r.value is not None or r.failed or r.skipped)):
            return r
    return None


def measured_of(point: str, row: object | None, reused: bool, limit: int | None = None,
                why_missing: str = "nothing was recorded for the series there") -> Measured:
    """The point's result from its recorded row; at most `limit` samples (the first ones:
    the first processes), so that points measured in more processes weigh the same, and how
    many processes those samples are (for detect.compare's rule beyond the processes)."""
    if row is None:
        return Measured(point, failed=True, reused=reused, reason=why_missing)
    samples = tuple(row.samples or ([row.value] if row.value is not None else []))
    processes = getattr(row, "processes", 0)
    per_process = len(samples) // processes if processes and not len(samples) % processes else 0
    if limit:
        samples = samples[:limit]
    processes = len(samples) // per_process if per_process and not len(samples) % per_process \
        else 0
    return Measured(point, samples, failed=row.failed or not samples, reused=reused,
                    reason=getattr(row, "reason", ""), skipped=getattr(row, "skipped", False),
                    processes=processes)


# ----------------------------------------------------------------------------- the points


def commit_points(repo: Path, good: str, bad: str, what: str) -> list[str]:
    """GOOD, then BAD's first-parent commits that descend from GOOD, oldest first (BAD
    last); bad input when GOOD is not an ancestor of BAD.

    Each point is then its predecessor's child, except where GOOD came in through a merge
    (GOOD on a branch merged into BAD's line): the first point after GOOD is that merge,
    whose first parent lacks GOOD. `--first-parent` alone would also list the commits
    before the merge, which do not contain GOOD, and judge them against it."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)

    ends = []
    for name in (good, bad):
        r = git("rev-parse", "--verify", "-q", f"{name}^{{commit}}")
        if r.returncode != 0:
            raise KernelwatchError(f"{name!r} is not a commit of {what} ({repo}); "
                                   f"`git -C {repo} log --oneline` lists them")
        ends.append(r.stdout.strip())
    if ends[0] == ends[1]:
        raise KernelwatchError(f"GOOD and BAD are the same commit ({ends[0][:12]}); give an "
                               "older GOOD")
    if git("merge-base", "--is-ancestor", *ends).returncode != 0:
        raise KernelwatchError(f"GOOD {good} is not an ancestor of BAD {bad} in {what}; "
                               "give GOOD BAD in history order (older first), on one branch")
    span = f"{ends[0]}..{ends[1]}"
    # git applies --ancestry-path within the first-parent walk, which never meets a GOOD off
    # that line: the descendants of GOOD come from the whole graph, the order from the line.
    descendants = set(git("rev-list", "--ancestry-path", span).stdout.split())
    line = git("rev-list", "--first-parent", "--reverse", span).stdout.split()
    return [ends[0], *(c for c in line if c in descendants)]


def first_parents(repo: Path, points: Sequence[str]) -> dict[str, str]:
    """point -> its first parent (a root commit has none)."""
    r = subprocess.run(["git", "rev-list", "--no-walk", "--parents", *points], cwd=repo,
                       capture_output=True, text=True)
    return {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()
            if len(line.split()) > 1}


def merge_note(points: Sequence[str], parents: dict[str, str]) -> str | None:
    """What to say when GOOD is not on BAD's first-parent line (the first point after it is
    a merge that brought GOOD in), else None."""
    if len(points) < 2 or parents.get(points[1]) == points[0]:
        return None
    return (f"GOOD {points[0][:12]} is not on BAD's first-parent line: it came in with the "
            f"merge {points[1][:12]}; the points are that merge and the first-parent commits "
            "after it (each contains GOOD), and the merge is judged against GOOD, not its "
            f"first parent {parents.get(points[1], '?')[:12]}")


def version_points(versions: Sequence[str], good: str, bad: str, dist: str) -> list[str]:
    for v in (good, bad):
        if v not in versions:
            raise KernelwatchError(f"{v} is not in --versions {dist}={','.join(versions)}; "
                                   "GOOD and BAD are two of the listed versions")
    i, j = versions.index(good), versions.index(bad)
    if i >= j:
        raise KernelwatchError(f"GOOD {good} comes after BAD {bad} in --versions; list the "
                               "versions oldest first and give the older as GOOD")
    return list(versions[i:j + 1])
