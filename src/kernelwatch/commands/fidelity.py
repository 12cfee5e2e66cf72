"""`kernelwatch fidelity`: each timed benchmark's noise, false alarms and the smallest
slowdown its regression check catches (kernelwatch.regression.fidelity does the measuring)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kernelwatch import environment, workloads
from kernelwatch.commands import common_args
from kernelwatch.engine import planner
from kernelwatch.engine.asvrun import machine_name
from kernelwatch.engine.gitrepo import find_repo_root, resolve_commit
from kernelwatch.errors import KernelwatchError, check_choices
from kernelwatch.regression import fidelity
from kernelwatch.report import fidelity as fidelity_view
from kernelwatch.report import host
from kernelwatch.results import rows as result_rows

RUNS, SLOWDOWNS, TIMEOUT = 21, "0.02,0.05,0.10", 600.0  # a measuring run's defaults
# Below this many neighbouring pairs, "no A/A alarm" says little (0 of 3 allows a rate of
# over 50%); the figures are still printed and filed, with a warning.
FEW_PAIRS = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    fid = sub.add_parser(
        "fidelity", help="measure each timed benchmark's noise, false alarms and the "
        "smallest slowdown its regression check catches",
        description="Run each timed benchmark's asv class in --runs fresh processes (as asv "
        "does), each measuring it as it is and with test-only slowdowns injected into the "
        "measuring core. Neighbouring processes are compared with the regression check "
        "(asv's significance test and a factor): A/A pairs give the false-alarm rate at each "
        "factor, A/B pairs the share of each slowdown caught. Prints a table per series; "
        "saves the raw samples under .kernelwatch/fidelity/ (a new file per run); "
        "`kernelwatch compare` and the site then use each series' threshold. Run it on a "
        "quiet machine: other work moves the figures. Default: every workload's quick case "
        "(plus caller time on a GPU); on 2 CPU cores about 30 min.")
    fid.add_argument("--workload", action="append",
                     help="only this workload (repeatable; default all)")
    common_args.add_param(fid, "this value of the workload's parameter (repeatable; default "
                          "the quick case)")
    fid.add_argument("--track", action="append", metavar="NAME",
                     help="this timed track, e.g. time, caller_time (default: the quick ones)")
    fid.add_argument("--runs", type=int, default=RUNS,
                     help="fresh processes per series (default 21: 20 neighbouring pairs)")
    fid.add_argument("--slowdowns", default=SLOWDOWNS,
                     help="injected slowdowns, fractions (default 0.02,0.05,0.10)")
    fid.add_argument("--timeout", type=float, default=TIMEOUT,
                     help="seconds one process may take (default 600)")
    common_args.add_machine(fid, "machine name the figures are filed under")
    fid.add_argument("--show", action="store_true",
                     help="print the table from the newest saved runs; measure nothing")
    fid.add_argument("--from-runs", metavar="MACHINE,MACHINE,...",
                     help="measure nothing: take the thresholds from an A/A already recorded, "
                     "one commit (--commit) run several times with `kernelwatch run "
                     "--machine NAME`, a name per run; each benchmark process is one run of "
                     "the check, and the figures are filed under --machine, whose `compare` "
                     "then uses them. Nothing was injected, so no catch rate")
    fid.add_argument("--commit", metavar="REV",
                     help="with --from-runs: the commit the A/A measured (default HEAD)")
    fid.add_argument("--env", metavar="NAME",
                     help="with --from-runs: the asv environment to read where the runs hold "
                     "several at that commit (e.g. one per torch version)")
    fid.add_argument("--pool", type=int, default=1, metavar="K",
                     help="judge pairs of K-process sets, samples pooled: what `kernelwatch "
                     "run --processes K` records (default 1; thresholds for compare and the "
                     "site are always for 1)")
    fid.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    repo = find_repo_root(needs_git=False)
    machine = machine_name(args.machine)
    if args.from_runs is not None:
        measuring = [flag for flag, given in (
            ("--show", args.show), ("--pool", args.pool != 1), ("--runs", args.runs != RUNS),
            ("--slowdowns", args.slowdowns != SLOWDOWNS), ("--timeout", args.timeout != TIMEOUT),
            ("--workload", args.workload), ("--param", args.param), ("--track", args.track))
            if given]
        if measuring:
            raise KernelwatchError(
                f"--from-runs measures nothing and files thresholds for one process a side, so "
                f"{', '.join(measuring)} do not apply; drop them (the series are those the "
                "runs recorded)")
        runs = [r.strip() for r in args.from_runs.split(",") if r.strip()]
        return from_runs(repo, machine, runs, args.commit or "HEAD", env=args.env)
    if args.commit or args.env:
        raise KernelwatchError(f"{'--commit' if args.commit else '--env'} goes with "
                               "--from-runs (an A/A on record); a measuring run times the "
                               "checkout as it is")
    if args.show:
        return show(repo, machine, pool=args.pool)
    try:
        slowdowns = [float(x) for x in args.slowdowns.split(",") if x.strip()]
    except ValueError:
        raise KernelwatchError(f"--slowdowns takes fractions like 0.02,0.05, not "
                               f"{args.slowdowns!r}") from None
    return measure(repo, machine, workload_names=args.workload, params=args.param or (),
                   tracks=args.track, runs=args.runs, slowdowns=slowdowns,
                   timeout=args.timeout, pool=args.pool)


def _check_pool(pool: int, runs: int | None = None) -> None:
    # Checked before measuring: a run takes many minutes.
    if pool < 1:
        raise KernelwatchError("--pool takes a count of 1 or more (3 pools three processes)")
    if runs is not None and pool > 1 and runs < 2 * pool:
        raise KernelwatchError(f"--pool {pool} needs at least {2 * pool} runs per series; "
                               "raise --runs")


def show(repo: Path, machine: str, pool: int = 1) -> int:
    """The table from the newest saved runs of `machine`; measures nothing."""
    _check_pool(pool)
    latest = fidelity.load_latest(repo).get(machine)
    if not latest:
        raise KernelwatchError(f"no fidelity runs for machine {machine!r} in "
                               f"{fidelity.fidelity_dir(repo)}; run `kernelwatch fidelity`")
    return _print([m for m, _ in latest.values()], pool)


def from_runs(repo: Path, machine: str, runs: Sequence[str], rev: str,
              env: str | None = None) -> int:
    """Thresholds from an A/A on record: the timed series `runs` (machine names, one run
    each) recorded at `rev` in one environment, each benchmark process one run of the check
    (the runs' processes interleaved); saved as a fidelity run of `machine`, whose `compare`
    uses them, and printed. Measures nothing."""
    if len(runs) < 2:
        raise KernelwatchError("--from-runs takes two machine names or more, comma-separated "
                               "(an A/A is one commit run at least twice, each run under its "
                               "own --machine name)")
    for run in runs:
        machine_name(run, "--from-runs")
    if len(set(runs)) < len(runs):
        raise KernelwatchError(f"--from-runs names a run twice ({', '.join(runs)}): each run "
                               "is one machine name")
    commit = resolve_commit(repo, rev)
    every = result_rows.load(repo / "results")
    rows = [r for r in every if r.commit == commit]
    recorded = sorted({r.machine for r in rows})
    missing = [run for run in runs if run not in recorded]
    if missing:
        elsewhere = sorted({r.commit[:8] for r in every if r.machine in missing})
        fix = (f"; {'they have' if len(missing) > 1 else 'it has'} results at "
               f"{', '.join(elsewhere)}: --commit names the commit the A/A measured"
               if elsewhere else
               f"; check the names (results at {commit[:8]}: {', '.join(recorded)})"
               if recorded else
               f"; measure it first, once per run: kernelwatch run --machine NAME "
               f"{commit[:8]}^!")
        raise KernelwatchError(f"no results for commit {commit[:8]} on "
                               f"{'machines' if len(missing) > 1 else 'machine'} "
                               f"{', '.join(map(repr, missing))}{fix}")
    envs = sorted({r.env_name for r in rows if r.machine in runs})
    if env is None and len(envs) > 1:
        raise KernelwatchError(f"the runs hold {len(envs)} environments at {commit[:8]} "
                               f"({', '.join(envs)}); --env NAME picks the one to read")
    if env is not None:
        lacking = [run for run in runs
                   if not any(r.machine == run and r.env_name == env for r in rows)]
        if lacking:
            raise KernelwatchError(f"--env {env}: not recorded by {', '.join(lacking)} at "
                                   f"{commit[:8]} (environments there: {', '.join(envs)})")
    chosen = env or envs[0]
    rows = [r for r in rows if r.env_name == chosen]
    measured, left_out = fidelity.from_rows(rows, runs)
    for why in left_out:
        print(f"kernelwatch: left out: {why}", file=sys.stderr)
    if not measured:
        raise KernelwatchError(
            f"the runs {', '.join(runs)} share no timed series at {commit[:8]} that a "
            "threshold can be read from (above: why each was left out); an A/A is the same "
            "selection run at least twice, each run under its own --machine name")
    facts = next(r.env for r in rows if r.machine == runs[0])
    path = fidelity.new_path(repo, machine)
    fidelity.save(path, machine, measured, facts)
    print(f"kernelwatch fidelity: {len(measured)} series from {len(runs)} runs of "
          f"{commit[:8]} ({', '.join(runs)}; {chosen}), each benchmark process a run; "
          f"nothing injected, so nothing is caught; machine {machine}")
    print(f"saved to {path}")
    status = _print(measured, 1)
    for line in host.between_runs(rows, runs):
        print(f"kernelwatch: {line}", file=sys.stderr)
    # the thresholds compare uses are judged one process a side: len(runs) - 1 pairs
    few = [m.target.key for m in measured if len(m.runs) - 1 < FEW_PAIRS]
    if few:
        print(f"kernelwatch: {len(few)} of {len(measured)} series rest on fewer than "
              f"{FEW_PAIRS} pairs of processes: a threshold with no alarm in so few pairs can "
              "still alarm often; more A/A runs (or `kernelwatch fidelity`'s own 21 "
              "processes) make it honest:\n  " + "\n  ".join(few), file=sys.stderr)
    return status


def measure(repo: Path, machine: str, *, workload_names: Sequence[str] | None,
            params: Sequence[str], tracks: Sequence[str] | None, runs: int,
            slowdowns: Sequence[float], timeout: float, pool: int = 1) -> int:
    """Measure every selected series in `runs` fresh processes, as it is and with each
    slowdown injected; save the samples and print the table."""
    _check_pool(pool, runs)
    if runs < 2:
        raise KernelwatchError(f"--runs {runs}: needs at least 2 (21 gives 20 pairs)")
    if not slowdowns or any(not 0 < x < 10 for x in slowdowns):
        given = ",".join(f"{x:g}" for x in slowdowns) or "(none)"
        raise KernelwatchError(f"--slowdowns {given}: each is a fraction between 0 and 10 "
                               "(0.05 = 5%)")
    if not timeout > 0:
        raise KernelwatchError(f"--timeout {timeout:g}: seconds one process may take, above 0 "
                               "(default 600)")
    import torch

    on_gpu = torch.cuda.is_available()
    names = workload_names or [w for w in workloads.WORKLOADS
                               if "time" in workloads.get(w).metrics]
    plan = []
    for name in names:
        chosen, env = planner.parse_params(name, params, {})
        check_choices(workloads.get(name).params, chosen, where=name)
        os.environ.update(env)
        plan += fidelity.targets(repo, name, chosen, tracks, on_gpu)
    print(f"kernelwatch fidelity: {len(plan)} series x {runs} processes (a case's series "
          f"share one), each measured as it is and with "
          f"{', '.join(f'{100 * x:g}%' for x in slowdowns)} injected; machine {machine}")
    measured = []
    path, facts = fidelity.new_path(repo, machine), environment.capture()
    groups = fidelity.cases(plan)
    for i, case in enumerate(groups, 1):
        names_of = ", ".join(t.track.removeprefix("track_") for t in case)
        print(f"[{i}/{len(groups)}] {case[0].key} ({names_of})", flush=True)
        measured += fidelity.measure_case(repo, case, runs, list(slowdowns), timeout=timeout,
                                          progress=lambda line: print(line, flush=True))
        fidelity.save(path, machine, measured, facts)
    print(f"samples saved to {path}")
    return _print(measured, pool)


def _print(measured: list, pool: int) -> int:
    done = [m for m in measured if not m.skipped]
    if any(len(m.runs) < 2 * pool for m in done):
        raise KernelwatchError(f"--pool {pool} needs at least {2 * pool} runs per series; "
                               "the saved runs have fewer")
    print()
    print(fidelity_view.markdown([fidelity.analyse(m, pool=pool) for m in done],
                                 [m for m in measured if m.skipped]))
    return 0
