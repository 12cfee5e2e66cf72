"""`kernelwatch report`: the speedup table and each workload's summary, as text or as the
markdown tables docs/ hold (each regenerated from the results the history keeps)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from kernelwatch import workloads
from kernelwatch.commands import common_args
from kernelwatch.engine.gitrepo import find_repo_root
from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import requirements, targets
from kernelwatch.report import site
from kernelwatch.results import rows as result_rows


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser(
        "report", help="print speedups vs eager and GB/s from results/",
        description="The newest measurement of each case, per machine and environment: "
                    "speedups against eager, GB/s, and each workload's own table. "
                    "`kernelwatch report --workload rope --machine gpu-h200 --markdown` "
                    "writes the tables docs/ show, from the results the history holds.")
    common_args.add_target(rep, "the library's results (results-DIST/)", needs_repo=False)
    rep.add_argument("--workload", action="append", metavar="NAME",
                     help="only this workload's cases (repeat for more)")
    common_args.add_machine(rep, "only the results filed under this machine name",
                            default_help="default: every machine's")
    rep.add_argument("--markdown", action="store_true",
                     help="markdown tables (for docs/) instead of aligned text")
    rep.set_defaults(handler=lambda args: print_report(
        find_repo_root(needs_git=False), target=args.target, workloads_=args.workload,
        machine=args.machine, markdown=args.markdown))


def print_report(repo: Path, target: str | None = None, *,
                 workloads_: list[str] | None = None, machine: str | None = None,
                 markdown: bool = False) -> int:
    """The tables of results/ (a --target library's: results-DIST/), of the workloads and
    the machine asked for."""
    results = targets.results_dir(repo, targets.dist_of(target)) if target else repo / "results"
    for name in workloads_ or ():
        workloads.get(name)  # an unknown name: the message lists the known ones
    rows = result_rows.load(results)
    if machine is not None:
        machines = sorted({r.machine for r in rows})
        if machine not in machines:
            raise KernelwatchError(
                f"no results of machine {machine!r} in {results.name}/; it holds "
                f"{', '.join(machines) or 'none yet'} (`kernelwatch run --machine NAME` "
                "files them)")
        rows = [r for r in rows if r.machine == machine]
    if workloads_:
        rows = [r for r in rows if r.workload in workloads_]
    if target:  # a library's history: one environment across its commits' requirement sets
        rows = [dataclasses.replace(r, env_name=requirements.base_env(r.env_name)) for r in rows]
    print(site.text_table(rows, workloads.bytes_for_benchmark, markdown=markdown))
    return 0
