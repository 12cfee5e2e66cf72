"""`kernelwatch env` (what is recorded about this machine) and `kernelwatch list` (what can
be measured: each workload's parameters, metric families and quick case)."""

from __future__ import annotations

import argparse
import json

from kernelwatch import environment, workloads
from kernelwatch.engine import planner


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("env", help="print what will be recorded about this machine and torch",
                       description="The facts results are filed with: torch and its build, CUDA, "
                       "the driver, the GPU, the CPU, its cores and threads, the libraries' "
                       "versions. `kernelwatch run` records them in asv's machine file.")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(handler=lambda args: show_environment(as_json=args.json))
    ls = sub.add_parser("list", help="list workloads: their parameters, metrics, quick case; "
                        "or the suites (--suites)")
    ls.add_argument("workload", nargs="?", help="one workload (default: all)")
    ls.add_argument("--suites", action="store_true",
                    help="the named suites (`kernelwatch run --suite NAME`) and what each "
                    "workload measures in them")
    ls.set_defaults(handler=lambda args: (list_suites(args.workload) if args.suites else
                                          list_workloads(args.workload)))


def show_environment(as_json: bool = False) -> int:
    info = environment.capture()
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        width = max(map(len, info))
        for k, v in sorted(info.items()):
            print(f"{k:<{width}}  {v}")
    return 0


def list_workloads(workload: str | None = None) -> int:
    names = [workload] if workload else list(workloads.WORKLOADS)
    for name in names:
        spec = workloads.get(name)
        print(f"{name}")
        width = max(map(len, [*spec.params, *spec.settings, "metrics", "quick"]))
        for param, values in spec.params.items():
            print(f"  {param + ':':<{width + 2}}" + ", ".join(values))
        for setting, var in spec.settings.items():
            print(f"  {setting + ':':<{width + 2}}--param {setting}=VALUE (or ${var})")
        families = ", ".join(f"{f} ({c})" for f, c in spec.metrics.items())
        print(f"  {'metrics:':<{width + 2}}{families}")
        quick = "; ".join(f"{k}={','.join(v)}" for k, v in spec.quick.items())
        print(f"  {'quick:':<{width + 2}}{quick}")
    print("\nSelect with --param NAME=VALUE (repeatable), --metric FAMILY, --track NAME; "
          "named suites: kernelwatch list --suites.")
    return 0


def list_suites(workload: str | None = None) -> int:
    """Each suite, what it is for, and each workload's parts of it (parameter values, metric
    families, tracks)."""
    for suite, purpose in workloads.SUITE_NAMES.items():
        print(f"{suite}: {purpose}")
        for name, params, metrics, tracks, processes in planner.suite_selections(suite, workload):
            values = "; ".join(f"{k}={','.join(v)}" for k, v in params.items()) or "every case"
            which = ", ".join(metrics or ["all"]) + (f" ({', '.join(tracks)})" if tracks else "")
            which += f"; {processes} processes each" if processes > 1 else ""
            print(f"  {name}: {values}\n    {which}")
    print("\nkernelwatch run --suite NAME [--workload W] [--param NAME=VALUE]; --dry-run "
          "counts the processes and estimates the time from this machine's records.")
    return 0
