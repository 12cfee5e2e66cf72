"""`kernelwatch report`: the speedup table and each workload's summary, as text."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from kernelwatch import workloads
from kernelwatch.commands import common_args
from kernelwatch.engine.gitrepo import find_repo_root
from kernelwatch.libraries import requirements, targets
from kernelwatch.report import site
from kernelwatch.results import rows as result_rows


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="print speedups vs eager and GB/s from results/")
    common_args.add_target(rep, "the library's results (results-DIST/)", needs_repo=False)
    rep.set_defaults(handler=lambda args: print_report(find_repo_root(needs_git=False),
                                                       target=args.target))


def print_report(repo: Path, target: str | None = None) -> int:
    """The text tables of results/ (a --target library's: results-DIST/)."""
    results = targets.results_dir(repo, targets.dist_of(target)) if target else repo / "results"
    rows = result_rows.load(results)
    if target:  # a library's history: one environment across its commits' requirement sets
        rows = [dataclasses.replace(r, env_name=requirements.base_env(r.env_name)) for r in rows]
    print(site.text_table(rows, workloads.bytes_for_benchmark))
    return 0
