"""`kernelwatch env` (what is recorded about this machine) and `kernelwatch list` (what can
be measured: each workload's parameters, metric families and quick case)."""

from __future__ import annotations

import argparse
import json

from kernelwatch import environment, workloads


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("env", help="print what will be recorded about this machine and torch")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(handler=lambda args: show_environment(as_json=args.json))
    ls = sub.add_parser("list", help="list workloads: their parameters, metrics, quick case")
    ls.add_argument("workload", nargs="?", help="one workload (default: all)")
    ls.set_defaults(handler=lambda args: list_workloads(args.workload))


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
        mod = workloads.get(name)
        print(f"{name}")
        width = max(map(len, [*mod.PARAMS, *getattr(mod, "SETTINGS", {}), "metrics", "quick"]))
        for param, values in mod.PARAMS.items():
            print(f"  {param + ':':<{width + 2}}" + ", ".join(values))
        for setting, var in getattr(mod, "SETTINGS", {}).items():
            print(f"  {setting + ':':<{width + 2}}--param {setting}=VALUE (or ${var})")
        families = ", ".join(f"{f} ({c})" for f, c in mod.BENCHMARKS.items())
        print(f"  {'metrics:':<{width + 2}}{families}")
        quick = "; ".join(f"{k}={','.join(v)}" for k, v in mod.QUICK.items())
        print(f"  {'quick:':<{width + 2}}{quick}")
    print("\nSelect with --param NAME=VALUE (repeatable), --metric FAMILY, --track NAME.")
    return 0
