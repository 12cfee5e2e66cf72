"""`kernelwatch run`: measure benchmarks with asv over a commit range and the torch matrix,
or in this interpreter (--existing). The work is the run engine's (kernelwatch.engine.run)."""

from __future__ import annotations

import argparse

from kernelwatch.commands import common_args
from kernelwatch.engine.gitrepo import find_repo_root
from kernelwatch.engine.run import LAUNCH_METHODS, RunRequest, run_suite
from kernelwatch.workloads import SUITE_NAMES

# Flags kept from before `--param`: each is `--param NAME=VALUE` for the parameter it names.
PARAM_ALIASES = ("shape", "form", "dtype", "scheme", "blocksize", "variant")


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "run", help="run the benchmarks with asv",
        description="Run benchmarks with `asv run` over a commit range and the torch matrix of "
        "asv.conf.json (one virtualenv per torch version), or in this interpreter "
        "(--existing, e.g. a GPU machine's preinstalled torch). Results go to results/. "
        "Arguments after `--` go to `asv run` unchanged.",
    )
    r.add_argument("range", nargs="?",
                   help="git range (default HEAD~2..HEAD, the last two commits)")
    r.add_argument("--quick", action="store_true",
                   help="each workload's tiny shape and a few variants (RoPE: eager, compile, "
                   "compile-dynamic; GPTQ: eager, compile-block at block 16), time, accuracy "
                   "and one cold compile: a few minutes on 2 CPU cores")
    r.add_argument("--suite", metavar="NAME",
                   help="a named selection: " + "; ".join(
                       f"{name}: {what}" for name, what in SUITE_NAMES.items())
                   + " (`kernelwatch list --suites`; --workload and --param narrow it)")
    r.add_argument("--existing", action="store_true",
                   help="benchmark with this interpreter's torch (asv -E existing:PYTHON), HEAD "
                   "only; one asv call per metric family, each saved when it ends")
    r.add_argument("--workload", action="append",
                   help="workload (default: rope; with --quick or --suite, every workload); "
                   "repeat it to take several workloads' parts of a suite")
    common_args.add_param(r, "only this value of the workload's parameter NAME (repeatable; "
                   "default all values). `kernelwatch list WORKLOAD` shows the names, e.g. "
                   "--param variant=eager --param size=gpt2")
    for flag in PARAM_ALIASES:
        r.add_argument(f"--{flag}", action="append", metavar=flag.upper(),
                       help=f"same as --param {flag}={flag.upper()}")
    r.add_argument("--metric", action="append", metavar="FAMILY",
                   help="only this metric family, e.g. time, accuracy (repeatable; default "
                   "all; `kernelwatch list` shows each workload's)")
    r.add_argument("--track", action="append", metavar="NAME", type=common_args.track_name,
                   help="only the track_ methods of this name, e.g. decode_time (repeatable)")
    r.add_argument("--torch", action="append", metavar="VERSION",
                   help="only this torch version of asv.conf.json's matrix (repeatable; an "
                   "exact version, pip flags allowed as in the matrix)")
    common_args.add_machine(r)
    r.add_argument("--branch", help="the branch asv follows (default: asv.conf.json's, or the "
                   "checked-out branch where that one does not exist)")
    r.add_argument("--rerun", action="store_true",
                   help="measure again what is already recorded, replacing it (default: each "
                   "commit and environment measures only the selected results not yet "
                   "recorded; failed ones are tried again, skipped ones are kept: their "
                   "reason is recorded and would be the same)")
    r.add_argument("--processes", type=int, default=1, metavar="K",
                   help="measure each selected benchmark in K fresh processes, samples "
                   "pooled (in one asv call: each process appends its samples): K=3 halves "
                   "the noise between commits on a shared machine (docs/measurement.md); "
                   "default 1, or a suite's own count for its series that move between "
                   "processes. The machine's facts are measured once; a case that skips or "
                   "fails is not started again; one recorded in fewer processes (a run cut "
                   "short) is measured in the rest only")
    common_args.add_target(r, "benchmark the library DIST at its commits: REPO is a local git "
                   "clone or a git URL, RANGE its commits (default its last two). Only the "
                   "cases the workloads declare for DIST run (kernelwatch list); kernelwatch "
                   "itself (HEAD) is installed beside it; results go to results-DIST/")
    r.add_argument("--versions", metavar="DIST=V1,V2",
                   help="these released versions of DIST side by side in asv's matrix (torch "
                   "or a declared library, installed with --no-deps beside its declared "
                   "requirements); the versions page compares them")
    r.add_argument("--steps", type=int, metavar="N",
                   help="at most N commits of the range, spread evenly (the newest and the "
                   "oldest included), as asv's --steps")
    r.add_argument("--shard", metavar="K/N",
                   help="only the K-th of N deterministic parts of the selection (class x "
                   "parameter combinations; environment facts in every part), for N runners")
    r.add_argument("--skip-machine-facts", action="store_true",
                   help="leave out environment.* (copy bandwidth, matmul rate, threads: "
                   "about 30 s a commit here); bisect does, following one series")
    r.add_argument("--launch", choices=LAUNCH_METHODS, dest="launch_method",
                   help="how asv starts each benchmark process: forkserver (asv.conf.json's "
                   "default: one server per environment imports torch and the suite once and "
                   "forks a process per benchmark and parameters) or spawn (a fresh "
                   "interpreter for each)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the asv commands, the number of benchmark processes and an "
                   "estimate of the time from the durations recorded on this machine; "
                   "measure nothing (with --existing where asv has not run yet, it first "
                   "discovers the suite to count it, writing results/benchmarks.json)")
    r.add_argument("-v", "--verbose", action="store_true",
                   help="stream asv's whole output (default: a progress bar and the failures; "
                   "the whole output goes to a log file under .kernelwatch/logs, whose path "
                   "is printed)")
    r.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    aliased = [f"{name}={value}" for name in PARAM_ALIASES
               for value in getattr(args, name) or ()]
    return run_suite(find_repo_root(), RunRequest(
        range=args.range, workloads=args.workload or (), params=[*aliased, *(args.param or ())],
        metrics=args.metric, tracks=args.track, quick=args.quick, suite=args.suite,
        existing=args.existing,
        torch=args.torch, machine=args.machine, branch=args.branch, rerun=args.rerun,
        processes=args.processes, dry_run=args.dry_run, verbose=args.verbose,
        asv_args=args.asv_args, target=args.target, versions=args.versions,
        shard=args.shard, skip_machine_facts=args.skip_machine_facts,
        launch_method=args.launch_method, steps=args.steps))
