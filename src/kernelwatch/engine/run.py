"""The run engine: measure a selection over commits and environments with asv, from Python.

`run_suite(repo, RunRequest(...))` is what `kernelwatch run` does, without the command line:
it plans the asv calls (planner), runs each under the lock of the checkout and the reaper
(asvrun), keeps every recorded file at least as good as it was (snapshot), and pools
`processes` fresh processes per benchmark. Bisection calls it point by point.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from kernelwatch import environment, inventory_file, workloads
from kernelwatch.engine import asvrun, planner, shards
from kernelwatch.engine.gitrepo import commits_in, git_output
from kernelwatch.engine.planner import Call, Selection
from kernelwatch.engine.progress import AsvProgress, Outcomes, log_path
from kernelwatch.engine.snapshot import Snapshot, free_bytes
from kernelwatch.errors import Interrupted, KernelwatchError, check_choices
from kernelwatch.libraries import releases, requirements, targets
from kernelwatch.results import outcomes


@dataclass
class RunRequest:
    """What to measure and where; every field is plain data (no argparse).

    params are NAME=VALUE pairs of the workload's parameters or settings; torch narrows the
    matrix to these exact versions; existing measures this interpreter's packages at HEAD."""

    range: str | None = None
    workload: str | None = None
    # Several workloads' parts of a suite (--suite or --quick); `workload` is the one of a
    # single-workload request.
    workloads: Sequence[str] = ()
    params: Sequence[str] = ()
    metrics: Sequence[str] | None = None
    tracks: Sequence[str] | None = None
    quick: bool = False
    suite: str | None = None  # a named selection (workloads.SUITE_NAMES); quick is "quick"
    existing: bool = False
    torch: Sequence[str] | None = None
    machine: str | None = None
    branch: str | None = None
    rerun: bool = False
    processes: int = 1
    dry_run: bool = False
    verbose: bool = False
    asv_args: Sequence[str] = field(default_factory=list)
    # A library measured at its commits ("DIST=REPO"), or released versions side by side
    # ("DIST=V1,V2"); a deterministic part of the selection ("K/N"); no environment facts.
    target: str | None = None
    versions: str | None = None
    shard: str | None = None
    skip_machine_facts: bool = False
    # How asv starts a benchmark process: None keeps asv.conf.json's (forkserver), "spawn"
    # a fresh interpreter for each.
    launch_method: str | None = None
    # At most this many commits of the range, spread evenly, the newest and oldest included
    # (asv's --steps, chosen before the commits are grouped by requirement set).
    steps: int | None = None
    # A library's run: the project's own baseline variant of the cases measured, once (at the
    # newest commit measured), so the speedups page has what the library is judged against.
    baseline_once: bool = True

    def __post_init__(self) -> None:
        self.workloads = tuple(dict.fromkeys([*self.workloads, *(
            [self.workload] if self.workload and not self.workloads else [])]))
        if len(self.workloads) == 1:
            self.workload = self.workloads[0]


@dataclass
class Plan:
    """A request resolved against the checkout: commits, selections, regex chunks."""

    rev: str
    commits: list[str]
    selections: list[Selection]
    chunks: list[list[str]]
    settings_env: dict[str, str]
    results: Path  # results/, or a target's results-DIST/
    target: targets.Target | None = None
    versions: tuple[str, list[str]] | None = None
    # What cannot be measured here, said before anything runs: commit (or version) -> why.
    refused: dict[str, str] = field(default_factory=dict)
    facts_once: bool = False  # the machine's facts at one point of the run, not at each
    baseline: list[str] = field(default_factory=list)  # the baseline's regexes, run once


@dataclass
class Group:
    """Commits measured under one asv configuration: a target's requirement set, a released
    version's, or the one configuration of a plain run."""

    config: Path | None
    commits: list[str]
    label: str = ""


class DiskFull(KernelwatchError):
    """asv stopped on a full disk; run_suite restores what it left and names the room."""


def resolve(repo: Path, request: RunRequest) -> Plan:
    """Check the request and turn it into commits and regexes; nothing is run."""
    if request.processes < 1:
        raise KernelwatchError("--processes takes a count of 1 or more (3 pools three)")
    target, versions, shard = _target_flags(repo, request)
    rev = request.range or ("HEAD^!" if request.existing else
                            targets.default_range(target) if target else "HEAD~2..HEAD")
    if request.existing and rev != "HEAD^!":
        raise KernelwatchError("--existing benchmarks the working tree's installed code only; "
                               "it cannot run a commit range (drop the range, or --existing)")
    commits = ([git_output(repo, "rev-parse", "HEAD")] if request.existing else
               targets.commits(target, rev) if target else commits_in(repo, rev))
    if not commits:
        raise KernelwatchError(
            f"the range {rev!r} selects no commits; HEAD~2..HEAD selects the last two "
            "(a clone needs that many: `git clone` without --depth 1)")
    if request.steps is not None:
        if request.steps < 1:
            raise KernelwatchError("--steps takes a count of 1 or more (10 measures ten "
                                   "commits of the range, spread evenly)")
        commits = spread(commits, request.steps)
    if target or versions:
        selections, settings_env = _target_selections(
            request, target.dist if target else versions[0])
    else:
        selections, settings_env = select(request)
    chunks = planner.chunks(selections, request.existing)
    # A library's history or its releases: the machine's facts describe the machine, not the
    # library, so they are measured at one point of the run, not at every commit.
    facts_once = bool(target or (versions and versions[0] != "torch"))
    if request.skip_machine_facts or facts_once:
        chunks = [c for c in ([rx for rx in c if rx != planner.ENVIRONMENT_REGEX]
                              for c in chunks) if c]
    results = targets.results_dir(repo, target.dist) if target else repo / "results"
    if shard:
        # Dealt by the seconds this machine recorded for each unit, so N runners of one kind
        # (which share the records through the results branch) finish together.
        recorded = planner.combination_durations(results, asvrun.machine_name(request.machine))
        chunks = [shards.narrow(chunk, selections, *shard, shards.unit_seconds(recorded))
                  for chunk in chunks]
    baseline = (_baseline_regexes(selections) if target and request.baseline_once
                and not request.dry_run else [])
    return Plan(rev, commits, selections, chunks, settings_env, results, target, versions,
                facts_once=facts_once and not request.skip_machine_facts, baseline=baseline)


def _baseline_regexes(selections: list[Selection]) -> list[str]:
    """The regexes of each selection's cases in its workload's baseline variant (eager, or
    what the workload names for this machine's device): the project's own code, the same at
    every commit of a library."""
    device = "cuda" if environment.host().get("gpu", "none") != "none" else "cpu"
    out = []
    for workload, chosen, families, tracks, _ in selections:
        if "variant" not in workloads.get(workload).params:
            continue
        variant = workloads.baseline_variant(workload, device)
        out.append(planner.selection_regex(workload, {**chosen, "variant": [variant]},
                                           families, tracks))
    return out


def spread(commits: Sequence[str], steps: int) -> list[str]:
    """At most `steps` of `commits` (newest first), evenly spaced, both ends kept."""
    if steps >= len(commits):
        return list(commits)
    if steps == 1:
        return [commits[0]]
    picks = sorted({round(i * (len(commits) - 1) / (steps - 1)) for i in range(steps)})
    return [commits[i] for i in picks]


def _target_flags(repo: Path, request: RunRequest):
    """--target, --versions and --shard, parsed and checked: (Target or None, (dist,
    versions) or None, (k, n) or None)."""
    target = versions = shard = None
    if request.target:
        if request.existing:
            raise KernelwatchError("--target builds the library at each commit in asv's "
                                   "environments; it cannot use --existing (drop one)")
        target = targets.resolve(request.target, repo)
    if request.versions:
        if target:
            raise KernelwatchError("--versions measures releases at kernelwatch's commits, "
                                   "--target a library's commits: give one of them")
        if request.existing:
            raise KernelwatchError("--versions builds one environment per version; it "
                                   "cannot use --existing (drop one)")
        versions = releases.parse_versions(request.versions)
        if versions[0] == "torch" and request.torch:
            raise KernelwatchError("--versions torch=... names the torch versions; drop "
                                   "--torch")
    if request.shard:
        shard = shards.parse(request.shard)
    return target, versions, shard


def _target_selections(request: RunRequest, dist: str) -> tuple[list[Selection],
                                                                 dict[str, str]]:
    """The selections of a --target or --versions run: what the workloads declare for
    `dist`, narrowed by --workload and --param (torch: every workload, as a plain run)."""
    if dist == "torch":
        return select(request)
    if len(request.workloads) > 1:
        raise KernelwatchError(f"a run of {dist} takes one --workload (or none: every "
                               "workload that declares it); run once per workload")
    workload = request.workload or (targets.only_workload(dist) if request.params else None)
    chosen, env = (planner.parse_params(workload, request.params, {}) if workload
                   else ({}, {}))
    metrics = list(request.metrics) if request.metrics else None
    tracks = list(request.tracks) if request.tracks else None
    return [Selection(*s) for s in targets.run_selections(
        dist, workload, chosen, quick=request.quick, metrics=metrics, tracks=tracks)], env


def select(request: RunRequest) -> tuple[list[Selection], dict[str, str]]:
    """The request's selections and the environment variables of its workload settings."""
    suite = _suite(request)
    if len(request.workloads) > 1:
        named = " ".join(f"--workload {w}" for w in request.workloads)
        if suite is None:
            raise KernelwatchError(f"{named}: without a suite, run measures one workload; "
                                   "add --suite NAME (or --quick) to take each one's part of "
                                   "it, or run once per workload")
        if request.params:
            raise KernelwatchError(f"{named} with a parameter's value (--param, --variant, "
                                   "--shape, ...): a value belongs to one workload; run once "
                                   "per workload")
        for name in request.workloads:
            workloads.get(name)  # unknown: one message naming the known ones
        selections = [s for name in request.workloads
                      for s in planner.suite_selections(suite, name)]
        return planner.narrow_quick(
            selections, {}, request.metrics, request.tracks, flag=_suite_flag(request, suite),
            fix="measure it once per workload, without the suite"), {}
    if suite is None:
        workload = request.workload or "rope"
        chosen, env = planner.parse_params(workload, request.params, {})
        return [Selection(workload, chosen, list(request.metrics or []) or None,
                          request.tracks)], env
    flag = _suite_flag(request, suite)
    if request.params and not request.workload:
        raise KernelwatchError(f"{flag} with --param narrows one workload's part of the "
                               "suite: add --workload W (`kernelwatch list --suites` shows "
                               "each suite)")
    chosen: dict[str, list[str]] = {}
    env: dict[str, str] = {}
    if request.workload:
        chosen, env = planner.parse_params(request.workload, request.params, {})
        check_choices(workloads.get(request.workload).params, chosen, where=request.workload)
    selections = planner.suite_selections(suite, request.workload)
    return planner.narrow_quick(selections, chosen, request.metrics, request.tracks,
                                flag=flag), env


def _suite_flag(request: RunRequest, suite: str) -> str:
    return "--quick" if suite == "quick" and request.quick else f"--suite {suite}"


def _suite(request: RunRequest) -> str | None:
    if request.quick and request.suite not in (None, "quick"):
        raise KernelwatchError(f"--quick is the quick suite; --suite {request.suite} is "
                               "another: give one of them")
    return "quick" if request.quick else request.suite


def run_suite(repo: Path, request: RunRequest) -> int:
    """Measure what `request` selects; 0 when every benchmark ran, 1 when some failed or
    timed out (recorded as failed; the rest saved). Bad input raises KernelwatchError."""
    _check_first(repo, request)
    if request.dry_run:  # measures nothing, writes no result: no need to wait for a run
        return _run(repo, request)
    with asvrun.results_lock(repo):
        return _run(repo, request)


def _check_first(repo: Path, request: RunRequest) -> None:
    """What is refused before the run takes the checkout's lock or reaches a library's
    repository: a --track no benchmark defines, a GPU suite where no GPU shows."""
    planner.check_tracks(repo / "benchmarks", request.tracks)
    suite = _suite(request)
    why = environment.why_no_gpu() if suite in workloads.GPU_SUITES else None
    if why:
        where = (f"--suite {suite} times real model shapes on an NVIDIA GPU, and this machine "
                 f"shows none ({why})")
        if not request.dry_run:
            raise KernelwatchError(f"{where}: run it on a GPU runner (scripts/ci/bench.sh, "
                                   "docs/runners.md), or --quick here")
        print(f"kernelwatch: {where}; the count below is a GPU runner's", flush=True)


def _run(repo: Path, request: RunRequest) -> int:
    asvrun.asv_executable()  # installed, or one message naming the fix
    if request.launch_method not in (None, *LAUNCH_METHODS):
        raise KernelwatchError(f"--launch {request.launch_method!r}: asv launches a benchmark "
                               f"process by {' or '.join(LAUNCH_METHODS)}")
    plan = resolve(repo, request)
    name = asvrun.machine_name(request.machine)
    snap = (None if request.dry_run else
            Snapshot.take(plan.results, name, asvrun.MACHINE_FILE.expanduser()))
    try:
        return _run_planned(repo, request, plan, name, snap)
    except DiskFull as full:
        assert snap is not None
        lines = snap.repair()
        room = max(64, 4 * snap.bytes_kept() // 2**20)
        raise KernelwatchError(
            disk_full_message(str(full), plan.results, environments_dir(repo), room)
            + " Recorded files were kept: " + ("; ".join(lines) or "none was touched")
        ) from None
    finally:
        if snap is not None:
            for line in snap.repair():
                print(f"kernelwatch: {line}", file=sys.stderr)


def environments_dir(repo: Path) -> Path:
    """Where asv builds this run's virtualenvs: KERNELWATCH_ENV_DIR, else asv.conf.json's."""
    configured = os.environ.get("KERNELWATCH_ENV_DIR") or asvrun.asv_config(repo).get(
        "env_dir", ".asv/env")
    return repo / configured


# What one environment of the matrix takes on disk here: torch 2.13.0 is a CPU build, 2.14.1
# a CUDA build with its nvidia-* libraries.
ENVIRONMENT_SIZES = "1.5 GB for torch 2.13.0, 6 GB for 2.14.1"


def disk_full_message(asv_line: str, results: Path, envs: Path, room_mib: int) -> str:
    """Which disk filled while asv ran, from the path asv or pip printed or, without one,
    from the room left on each disk a run writes to, and what to free there."""
    tmp = Path(tempfile.gettempdir())
    places = {"results/": results, f"asv's environments ({envs})": envs,
              f"the temporary folder ({tmp}, where pip unpacks)": tmp}
    free = {name: free_bytes(path) // 2**20 for name, path in places.items()}
    named = re.search(r"No space left on device: '([^']+)'", asv_line)
    if named:
        where = Path(named.group(1))
        full = [name for name, path in places.items() if where.is_relative_to(path)][:1]
    else:
        full = [name for name in places if free[name] < room_mib]
    if full == ["results/"]:
        return (f"the disk holding results/ is full ({free['results/']} MiB free): free at "
                f"least {room_mib} MiB there and run again.")
    if len(full) == 1:
        return (f"the disk holding {full[0]} is full ({free[full[0]]} MiB free): an "
                f"environment takes {ENVIRONMENT_SIZES}. Free room there (asv's unused "
                "environments are folders in .asv/env; KERNELWATCH_ENV_DIR or TMPDIR can "
                "point at a larger disk) and run again.")
    now = ", ".join(f"{name} {mib} MiB" for name, mib in free.items())
    return (f"a disk filled while asv ran (asv: {asv_line.strip()[:200]}); free now: {now}. "
            f"An environment takes {ENVIRONMENT_SIZES} while pip installs it: free that "
            "much where it is short (KERNELWATCH_ENV_DIR or TMPDIR can point at a larger "
            "disk) and run again.")


# asv's launch methods: a server that imported the suite forks each benchmark process
# (asv.conf.json's), or a fresh interpreter for each.
LAUNCH_METHODS = ("forkserver", "spawn")


def _run_planned(repo: Path, request: RunRequest, plan: Plan, name: str,
                 snap: Snapshot | None) -> int:
    if not request.dry_run:  # a dry run starts no asv: it leaves asv's machine file alone
        asvrun.write_machine_info(name, request.existing)
    groups = _groups(repo, request, plan)
    say_refused(plan, subjects=_subjects(plan))
    # Where the benchmark processes leave the kernel inventories, filed after each call.
    spool = repo / ".kernelwatch" / "inventory-spool"
    plan.settings_env[inventory_file.SPOOL_ENV] = str(spool)
    # torch.cuda.is_available() through NVML: it does not initialise the CUDA driver, so a
    # forkserver that asks stays fit to fork benchmark processes that use CUDA.
    plan.settings_env.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    if request.existing:
        plan.settings_env[inventory_file.COMMIT_ENV] = plan.commits[0]
    # This interpreter, named explicitly (asv's --python=same is the interpreter asv's script
    # runs under), so that kernelwatch knows the environment's result file.
    python = sys.executable if request.existing else None
    ended = RunOutcomes(plan, name)
    with contextlib.ExitStack() as stack:
        log = None
        if not (request.verbose or request.dry_run):
            path = log_path(repo)
            # Line-buffered, so `tail -f` follows it.
            log = stack.enter_context(path.open("a", encoding="utf-8", buffering=1))
            print(f"kernelwatch: asv's full output goes to {path} (-v shows it here)",
                  flush=True)
        runners = []
        for i, group in enumerate(groups):
            if len(groups) > 1:
                print(f"kernelwatch: requirement set {i + 1} of {len(groups)}"
                      + (f" ({group.label})" if group.label else "")
                      + f": {len(group.commits)} commit{'s' * (len(group.commits) != 1)}"
                      if plan.target else
                      f"kernelwatch: environment {i + 1} of {len(groups)}: {group.label}",
                      flush=True)
            runner = _group_runner(repo, request, plan, name, group, plan.chunks, python,
                                   spool, snap, log, ended)
            runners.append(runner)
            _run_group(runner, request)
        once = (plan.baseline + [planner.ENVIRONMENT_REGEX] * plan.facts_once)
        if once and groups and ended.measured_at:
            # The machine's facts and the project's own baseline once, at the newest point
            # that was measured: they describe the machine and kernelwatch, not the library.
            group = next(g for g in groups if ended.measured_at[0] in g.commits)
            point = Group(group.config, [ended.measured_at[0]], group.label)
            what = " and ".join(filter(None, [
                "the project's own baseline" if plan.baseline else "",
                "the machine's facts" if plan.facts_once else ""]))
            print(f"kernelwatch: {what}, once for the run, at {ended.measured_at[0][:8]}",
                  flush=True)
            runners.append(_group_runner(repo, request, plan, name, point, [once], python,
                                         spool, snap, log, ended))
            runners[-1].run(runners[-1].calls)
        if log is not None:
            print(f"kernelwatch: asv's full output is in {log.name}", flush=True)
    failed = any(r.failed for r in runners)
    causes = set().union(*(r.causes for r in runners)) if runners else set()
    return ended.summary(failed, causes, dry_run=request.dry_run)


def _group_runner(repo: Path, request: RunRequest, plan: Plan, name: str, group: Group,
                  chunks: list[list[str]], python: str | None, spool: Path,
                  snap: Snapshot | None, log: TextIO | None, ended: RunOutcomes) -> _Calls:
    config = group.config
    # asv's `run` with kernelwatch's loop: each parameter combination saved as it ends.
    # More processes per benchmark (--processes for every benchmark, a suite's `processes`
    # for its series that move between processes): the benchmark loop measures each such
    # combination again in a new process within the same asv call and appends the samples,
    # so a result pools several processes (docs/measurement.md: most of the noise between
    # two commits is between processes) at no further asv start or suite import.
    by_regex = planner.processes_by_regex(plan.selections, request.processes)
    # A series cut among its processes gets the rest, unless all is measured again or asv's
    # own rounds run (they do not append to what is recorded).
    topping_up = not request.rerun and "--interleave-rounds" not in request.asv_args
    base = [sys.executable, "-m", "kernelwatch.engine.benchloop", "--save-to", str(plan.results),
            *itertools.chain.from_iterable(("--processes", f"{body}={k}")
                                           for body, k in by_regex.items()),
            *(["--discovery-cache", str(repo / ".kernelwatch" / "discovery")]
              if request.existing else []),
            *(["--top-up"] if topping_up else []),
            "--", *(["--config", str(config)] if config else []),
            "run", "--machine", name, "--record-samples", "--show-stderr",
            *(["--launch-method", request.launch_method] if request.launch_method else [])]
    if request.existing:
        # asv saves results of an `existing` environment only with a commit to file them under.
        base += ["-E", f"existing:{python}", "--set-commit-hash", plan.commits[0]]
    if request.dry_run and request.existing and not planner.read_benchmarks(plan.results):
        _discover_suite(repo, config or repo / "asv.conf.json", python, plan)
    envs = asvrun.environment_names(config or repo / "asv.conf.json", python)
    calls = (planner.plan(plan.results, name, group.commits, envs, chunks,
                          by_regex if topping_up else None)
             if not request.rerun else [Call(group.commits, envs, c) for c in chunks])
    prefixes = asvrun.environment_prefixes(config or repo / "asv.conf.json", python)

    def file_inventories() -> None:
        inventory_file.collect(spool, plan.results / name, prefixes)

    def saved() -> None:
        file_inventories()
        if snap is not None:
            snap.refresh()

    runner = _Calls(repo, request, plan, base, envs, saved=saved, cut=file_inventories,
                    benchmarks=planner.read_benchmarks(plan.results),
                    durations=planner.combination_durations(plan.results, name),
                    rev=plan.rev if group.commits == plan.commits else None, ended=ended,
                    processes=by_regex, machine=name)
    runner.log = log
    runner.calls = calls
    return runner


def _discover_suite(repo: Path, config: Path, python: str, plan: Plan) -> None:
    """Write results/benchmarks.json from asv's discovery in the `existing` environment, for
    a dry run on a machine where asv has not run yet: without it there is nothing to count
    the combinations from. Seconds (the environment imports the suite), none where the
    discovery is kept; what it writes is what the run's first asv call writes."""
    print("kernelwatch: no results/benchmarks.json here yet: discovering the suite to count "
          "its combinations", flush=True)
    cmd = [sys.executable, "-m", "kernelwatch.engine.discovery", "--config", str(config),
           "--python", python, "--commit", plan.commits[0],
           "--cache", str(repo / ".kernelwatch" / "discovery")]
    done = subprocess.run(cmd, cwd=repo, env={**os.environ, **plan.settings_env},
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"kernelwatch: the suite's discovery failed ({last[:300]}); to see asv's whole "
              f"message, run: {shlex.join(cmd)}", flush=True)


def _run_group(runner: _Calls, request: RunRequest) -> None:
    if request.dry_run:
        planned = sum((runner.planned(c) for c in runner.calls), Counter())
        total = planner.estimate(planned, runner.durations)
        where = ("" if runner.benchmarks else
                 "; results/benchmarks.json, which the count is read from, is not there"
                 + (" (the discovery above failed)" if request.existing else
                    " until asv's first run here (it builds an environment to discover the "
                    "suite; with --existing a dry run discovers it)"))
        print(f"kernelwatch: would run {total.describe()}{where}", flush=True)
        elsewhere = (planner.elsewhere_line(runner.plan.results, runner.machine, planned,
                                            total.unknown) if total.unknown else None)
        for line in (total.workloads_line(), total.floors_line(), total.unrecorded_line(),
                     elsewhere):
            if line is not None:
                print(f"kernelwatch: {line}", flush=True)
    runner.run(runner.calls)


def _subjects(plan: Plan) -> dict[str, str]:
    if plan.target is None:
        return {}
    return targets.subjects(plan.target.repo, list(plan.refused))


def say_refused(plan: Plan, subjects: dict[str, str] | None = None, limit: int = 6) -> None:
    """The commits (or versions) that cannot be measured here, by reason, before anything
    runs."""
    by_reason: dict[str, list[str]] = {}
    for point, why in plan.refused.items():
        by_reason.setdefault(why, []).append(point)
    what = "version" if plan.versions else "commit"
    for why, points in by_reason.items():
        named = ", ".join(f"{p[:8]}" + (f" ({subjects[p][:50]})" if subjects and p in
                                         subjects else "") for p in points[:limit])
        more = f" and {len(points) - limit} more" if len(points) > limit else ""
        print(f"kernelwatch: not measurable here: {len(points)} {what}"
              f"{'s' * (len(points) != 1)}, {named}{more}: {why}", flush=True)


def _groups(repo: Path, request: RunRequest, plan: Plan) -> list[Group]:
    """The asv configurations of this run and the commits each measures: one per requirement
    set of a target (libraries/requirements.py), one per released version of a library, one
    otherwise. What cannot be measured goes to plan.refused."""
    torch = list(request.torch or []) or None
    env_dir = os.environ.get("KERNELWATCH_ENV_DIR")
    if plan.target:
        base = asvrun.asv_config(repo)
        matrix_torch = torch or list(base.get("matrix", {}).get("req", {}).get("torch", []))
        branch = (request.branch if request.branch and targets.commit(plan.target,
                                                                      request.branch)
                  else None)
        found, refused = requirements.sets_for_commits(repo, plan.target.repo, plan.target.dist,
                                                       plan.commits, matrix_torch)
        plan.refused.update({c: why.reason for c, why in refused.items()})
        groups = []
        for (version, _), group in found.items():
            conf = targets.target_config(base, plan.target, repo, torch_versions=[version],
                                         env_dir=env_dir, branch=branch, requirement_set=group)
            label = requirements.describe_group(group, [g for g in found.values()
                                                        if g.key != group.key])
            groups.append(Group(targets.write_config(repo, conf), group.commits,
                                f"torch {version}, {label}" if len(matrix_torch) > 1
                                else label))
        return groups
    config = asvrun.derived_config(repo, existing=request.existing, torch_versions=torch,
                                   env_dir=env_dir,
                                   branch=asvrun.history_branch(repo, request.branch))
    if not plan.versions or plan.versions[0] == "torch":
        if plan.versions:
            from asv import util as asv_util

            conf = asv_util.load_json(str(config or repo / "asv.conf.json"), js_comments=True)
            releases.check_installable(*plan.versions)
            config = targets.write_config(repo, releases.versions_matrix(conf,
                                                                         *plan.versions))
        return [Group(config, plan.commits)]
    from asv import util as asv_util

    dist, versions = plan.versions
    releases.check_installable(dist, versions)
    plan.settings_env.update(releases.NO_DEPS_ENV)
    conf = asv_util.load_json(str(config or repo / "asv.conf.json"), js_comments=True)
    matrix_torch = conf.get("matrix", {}).get("req", {}).get("torch", [])
    groups = []
    for version in versions:
        for torch_version in matrix_torch:
            group = requirements.set_for_release(repo, dist, version, torch_version)
            if isinstance(group, requirements.NotMeasurable):
                plan.refused[version] = group.reason
                continue
            one = releases.versions_matrix(conf, dist, [version], requirements=False)
            one["matrix"]["req"]["torch"] = [torch_version]
            one = requirements.config_for(one, group, repo, dist=None, kernelwatch_source=None)
            groups.append(Group(targets.write_config(repo, one), plan.commits,
                                f"{dist} {version}, torch {torch_version}"))
    return groups


class RunOutcomes:
    """What the combinations of a run ended as, across its asv calls: said on the console
    per commit as each call ends (the reason, and what to do), kept in the outcome files
    beside the results (kernelwatch.results.outcomes), and summed up at the end with the exit
    status."""

    def __init__(self, plan: Plan, machine: str) -> None:
        self.plan = plan
        self.machine = machine
        self.counts: Counter[str] = Counter()
        self.commits_ran: set[str] = set()
        self.measured_at: list[str] = []  # commits where a combination ended ok, newest first
        self.dist = plan.target.dist if plan.target else (
            plan.versions[0] if plan.versions and plan.versions[0] != "torch" else None)

    def _commit(self, short: str) -> str:
        return next((c for c in self.plan.commits if c.startswith(short)), short)

    def add(self, ended: Outcomes) -> None:
        subjects = (targets.subjects(self.plan.target.repo, [self._commit(c) for c, _ in
                                                             ended.by_point])
                    if self.plan.target else {})
        for (short, env), entries in ended.by_point.items():
            if not short or not env:
                continue
            commit = self._commit(short)
            self.commits_ran.add(commit)
            # The machine's facts are no case of the code under test: not counted.
            real = {n: v for n, v in entries.items()
                    if n != outcomes.WHOLE_COMMIT and not n.startswith("environment.")}
            self.counts.update(ended.processes.get((short, env), Counter()))
            if any(status == "ok" for status, _ in real.values()) and \
                    commit not in self.measured_at:
                self.measured_at.append(commit)
                self.measured_at.sort(key=lambda c: self.plan.commits.index(c)
                                      if c in self.plan.commits else 0)
            outcomes.record(self.plan.results, self.machine, commit, env, entries)
            self._say(commit, env, entries, subjects.get(commit, ""))

    def _say(self, commit: str, env: str, entries: dict[str, tuple[str, str]],
             subject: str) -> None:
        bad = {n: v for n, v in entries.items() if v[0] != "ok"}
        if not bad:
            return
        where = f"{commit[:8]}" + (f" ({subject[:60]})" if subject else "")
        by_reason: dict[tuple[str, str], list[str]] = {}
        for name, (status, reason) in bad.items():
            by_reason.setdefault((status, reason), []).append(name)
        total = sum(1 for n in entries if n != outcomes.WHOLE_COMMIT)
        for (status, reason), names in by_reason.items():
            if names == [outcomes.WHOLE_COMMIT]:
                print(f"kernelwatch: {where}: {reason}; its benchmarks are recorded as "
                      f"failed. {self._fix('build')}", flush=True)
                continue
            first = names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")
            print(f"kernelwatch: {where}: {len(names)} of {total} {status}: {first}: "
                  f"{reason or 'no reason printed'}. {self._fix(status)}", flush=True)

    def _fix(self, status: str) -> str:
        if self.dist and status == "failed":
            return (f"A failure of {self.dist}'s code (or its build) at this point: bisect "
                    "skips such a point (--failed-is-bad counts it as bad); the traceback is "
                    "in asv's log")
        if status == "failed":
            return "The traceback is in asv's log (-v shows it here)"
        if status == "build":
            return "pip's output is in asv's log"
        return "The reason names what would make it run"

    def summary(self, failed: bool, causes: set[str], *, dry_run: bool) -> int:
        """The run's last lines and its exit status: 1 when something failed, or when a
        library's run measured nothing (every case skipped, every commit refused)."""
        if dry_run:
            return 0
        ok, skipped, bad = (self.counts[k] for k in ("ok", "skipped", "failed"))
        what = "version" if self.plan.versions and self.dist else "commit"
        refused = len(self.plan.refused)
        parts = [f"{ok} ok", f"{skipped} skipped", f"{bad} failed"]
        line = (f"kernelwatch: summary: {len(self.commits_ran)} {what}"
                f"{'s' * (len(self.commits_ran) != 1)} run; benchmark processes "
                f"{', '.join(parts)}")
        if refused:
            line += f"; {refused} {what}{'s' * (refused != 1)} not measurable (named above)"
        print(line, flush=True)
        if failed:
            print("kernelwatch: some benchmarks failed or timed out (see the messages above); "
                  "those parameters are recorded as failed (one whose failing process was "
                  "to add to samples recorded earlier keeps those), every other result is "
                  "saved", file=sys.stderr)
            for cause in sorted(causes):
                print(f"kernelwatch: {asvrun.FAILURE_FIXES[cause]}", file=sys.stderr)
            return 1
        if self.dist and not ok and (skipped or refused):
            print(f"kernelwatch: nothing of {self.dist} was measured: every case was skipped "
                  "or not measurable (the reasons are above); not done", file=sys.stderr)
            return 1
        return 0


@dataclass
class _Calls:
    """Runs planned asv calls one after another, noting failures and their causes."""

    repo: Path
    request: RunRequest
    plan: Plan
    base: list[str]
    envs: list[str]
    saved: Callable[[], None] | None = None  # after each asv call that finished and saved
    # After a call cut short (Ctrl-C, SIGTERM): the kernel inventories of the combinations
    # that ended, which the benchmark loop's result file already holds.
    cut: Callable[[], None] | None = None
    benchmarks: dict = field(default_factory=dict)  # asv's benchmarks.json, {} if none yet
    durations: dict[str, float] = field(default_factory=dict)  # seconds per combination
    log: TextIO | None = None
    failed: bool = False
    causes: set[str] = field(default_factory=set)
    rev: str | None = None  # the range that names this runner's commits, where one does
    ended: RunOutcomes | None = None
    calls: list[Call] = field(default_factory=list)
    processes: dict[str, int] = field(default_factory=dict)  # {regex body: processes}
    machine: str = ""  # the asv machine name the results are filed under

    def planned(self, call: Call) -> Counter[str]:
        """The benchmark processes `call` starts, per combination name."""
        return planner.combinations(self.benchmarks, call, self.processes)

    def command(self, call: Call) -> list[str]:
        full = list(self.base)
        if not self.request.existing:
            full.append(self.rev if self.rev and call.commits == self.plan.commits
                        else asvrun.hashfile(self.repo, call.commits))
            if call.envs != self.envs:
                for env in call.envs:
                    full += ["-E", env]
        for r in call.regexes:
            full += ["-b", r]
        return [*full, *self.request.asv_args]

    def run(self, calls: list[Call]) -> None:
        """One asv run per call."""
        for i, call in enumerate(calls, 1):
            full = self.command(call)
            planned = self.planned(call)
            if self.request.dry_run:
                if self.benchmarks and len(calls) > 1:
                    print(f"kernelwatch: part {i}: "
                          f"{planner.estimate(planned, self.durations).describe()}",
                          flush=True)
                print(shlex.join(full))
                continue
            if len(calls) > 1:
                print(f"kernelwatch: part {i} of {len(calls)}", flush=True)
            if call.kept and self.benchmarks and not planned:
                # Everything this call would measure is recorded: no asv start for nothing.
                print(f"kernelwatch: {call.kept} selected results already recorded at "
                      f"{', '.join(c[:8] for c in call.commits[:6])}"
                      f"{' ...' * (len(call.commits) > 6)} are kept, not measured again "
                      "(--rerun measures them again)", flush=True)
                continue
            if call.kept:
                everything = call.commits == self.plan.commits and call.envs == self.envs
                where = ("" if everything else f" at {', '.join(c[:8] for c in call.commits)}"
                         f" in {', '.join(call.envs)}")
                print(f"kernelwatch: {call.kept} selected results already recorded{where} "
                      "are kept, not measured again (--rerun measures them again)", flush=True)
            if call.pooled:
                print(f"kernelwatch: {len(call.pooled)} selected results recorded in fewer "
                      "processes than this run asks (a run cut short, or fewer asked then) "
                      "are measured in the rest only, their samples appended (--rerun "
                      "measures them anew)", flush=True)
            label = f"part {i}/{len(calls)}" if len(calls) > 1 else "asv"
            self._run_one(full, call, label, planned)

    def _run_one(self, full: list[str], call: Call, label: str, planned: Counter[str]) -> None:
        print("+", shlex.join(full), flush=True)
        if planned:
            print(f"kernelwatch: {planner.estimate(planned, self.durations).describe()}",
                  flush=True)
        seen: dict[str, str] = {}
        progress = (AsvProgress(self.log, label, planned=planned, estimates=self.durations)
                    if self.log is not None else None)
        outcomes = Outcomes()
        try:
            rc = asvrun.stream(full, self.repo, seen, self.plan.settings_env, progress,
                               outcomes)
        except Interrupted:
            if self.cut is not None:
                try:
                    self.cut()
                except (OSError, KernelwatchError) as exc:  # the interruption is the news
                    print(f"kernelwatch: {exc}", file=sys.stderr, flush=True)
            raise
        finally:
            if self.ended is not None:
                self.ended.add(outcomes)
        self.causes |= seen.keys() & asvrun.FAILURE_FIXES.keys()
        if rc != 0 and "disk-full" in seen:
            raise DiskFull(seen["disk-full"])
        if rc != 0 and "env-failed" in seen:
            raise KernelwatchError(asvrun.environment_failure(seen, self.repo, self.log))
        if rc in (0, 1) and "none-selected" in seen:  # asv exits 1 on it in some modes
            if not call.kept:
                raise KernelwatchError("the selection matches no benchmark; "
                                       "`kernelwatch list` shows what exists")
            print("kernelwatch: nothing left to measure there; every selected result is "
                  "recorded", flush=True)
            return
        if rc in (0, 2) and self.saved is not None:
            self.saved()
        if rc == 2:  # asv's own code for "some benchmark failed": the run finished and saved
            self.failed = True
        elif rc != 0:
            where = f" (its output: {self.log.name})" if self.log is not None else ""
            raise KernelwatchError(f"asv run exited with status {rc}{where}; every "
                                   "parameter combination that finished is saved in "
                                   f"{self.plan.results.name}/")
