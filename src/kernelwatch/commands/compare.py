"""`kernelwatch compare BASE HEAD`: markdown of what changed between two commits, for a pull
request or a CI summary; exit 1 when a time or memory series got worse."""

from __future__ import annotations

import argparse
import sys

from kernelwatch import inventory_file, workloads
from kernelwatch.commands import common_args
from kernelwatch.engine.asvrun import asv_config, machine_name
from kernelwatch.engine.gitrepo import find_repo_root, resolve_commit
from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import requirements, targets
from kernelwatch.regression import detect, fidelity
from kernelwatch.report import compare, explain
from kernelwatch.results import rows as result_rows


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmp = sub.add_parser(
        "compare", help="markdown of what changed between two commits; exit 1 on a regression",
        description="Compare every series recorded at BASE and at HEAD (same machine by "
        "default) and print a markdown table for a pull request or a CI summary, significant "
        "changes first. A change counts when asv's test on the recorded samples finds it "
        "significant and the medians differ by more than --factor (and, for a series "
        "pooled from several benchmark processes at both, every process of one side lies "
        "beyond every one of the other); a benchmark whose "
        "`version` changed in between is shown as not comparable. Exits 1 when a time or "
        "memory series got worse, or a benchmark newly fails.")
    cmp.add_argument("base", help="the commit before (e.g. main, HEAD~1)")
    cmp.add_argument("head", help="the commit after (e.g. HEAD)")
    cmp.add_argument("--factor", type=common_args.ratio, metavar="RATIO",
                     help="smallest ratio of medians that counts, for every series (default: "
                     "each series' threshold from `kernelwatch fidelity` on this machine, "
                     "else 1.10)")
    common_args.add_machine(cmp, "asv machine of HEAD's results")
    cmp.add_argument("--base-machine", help="asv machine of BASE's results (default: "
                     "--machine); two machine names of one commit compare two runs of it")
    common_args.add_target(cmp, "BASE and HEAD are commits of the library (results-DIST/)")
    cmp.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    head_machine = machine_name(args.machine)
    base_machine = (machine_name(args.base_machine, "--base-machine")
                    if args.base_machine is not None else head_machine)
    return compare_commits(find_repo_root(), args.base, args.head, machine=head_machine,
                           base_machine=base_machine, factor=args.factor, target=args.target)


def _not_measurable(repo, library, commit: str) -> str | None:
    """Why a library's commit cannot be measured here, as `run` would say it before
    running (its build files, its requirements with the matrix's torch, the adapter's
    range), or None."""
    torch = list(asv_config(repo).get("matrix", {}).get("req", {}).get("torch", []))[:1]
    _, refused = requirements.sets_for_commits(repo, library.repo, library.dist, [commit],
                                               torch, say=lambda line: None)
    return refused[commit].reason if commit in refused else None


def compare_commits(repo, base_rev: str, head_rev: str, *, machine: str, base_machine: str,
                    factor: float | None = None, target: str | None = None) -> int:
    """Print the comparison of BASE and HEAD; 1 when something got worse beyond its
    threshold. An explicit `factor` is used for every series; without it, each series
    measured by `kernelwatch fidelity` on this machine is judged as fidelity.factor says
    (its own threshold; 1.50 where its A/A alarmed at every factor and both sides are one
    process), the rest at 1.10."""
    if target:  # the library's commits, its results
        library = targets.resolve(target, repo)
        base = (base_machine, targets.commit(library, base_rev))
        head = (machine, targets.commit(library, head_rev))
        rows = result_rows.load(targets.results_dir(repo, library.dist))
    else:
        base = (base_machine, resolve_commit(repo, base_rev))
        head = (machine, resolve_commit(repo, head_rev))
        rows = result_rows.load(repo / "results")
    for m, commit in (base, head):
        if not any(r.machine == m and r.commit == commit for r in rows):
            machines = sorted({r.machine for r in rows if r.commit == commit})
            why = _not_measurable(repo, library, commit) if target else None
            if why:
                raise KernelwatchError(f"{commit[:8]} of {library.dist} has no results: it is "
                                       f"not measurable here ({why})")
            raise KernelwatchError(
                f"no results for commit {commit[:8]} on machine {m!r}"
                + (f" (it has results on: {', '.join(machines)}; --machine / "
                   "--base-machine choose)" if machines else
                   f"; measure it first: kernelwatch run {commit[:8]}^!"))
    thresholds = None if factor else fidelity.thresholds(repo).get(machine)
    factor = factor or detect.DEFAULT_FACTOR
    results = targets.results_dir(repo, library.dist) if target else repo / "results"
    inventories = {(m, *key): entry for m in {base[0], head[0]}
                   for key, entry in inventory_file.load_all(results, m).items()}
    comparisons = compare.compare(rows, base, head, factor=factor, thresholds=thresholds,
                                  gate=workloads.gate_failure,
                                  env_key=requirements.base_env if target else None,
                                  inventories=inventories)
    if not comparisons:
        raise KernelwatchError("the two have no series in common; run the same selection "
                               "at both")
    print(compare.markdown(comparisons, base, head, factor, thresholds))
    why = explain.explain(rows, base, head, compare.timed_changes(comparisons), inventories)
    if why:
        print("\n#### Where the time went\n")
        print("\n".join(explain.markdown(why)))
    drift = explain.break_even_drift(rows, base, head, workloads.baseline_variant, factor)
    if drift:
        print("\n#### Break-even drift (calls to pay back a compile or quantization)\n")
        print("\n".join(drift))
    failing = [c for c in comparisons if c.mark == compare.FAILING]
    if failing:
        print(f"kernelwatch: {len(failing)} series fail at both commits (marked `failing`; "
              "the reasons are in the table)", file=sys.stderr)
    worse = [c for c in comparisons if c.mark in compare.WORSE_MARKS]
    if worse:
        print(f"\nkernelwatch: {len(worse)} series worse beyond their threshold "
              "(exit status 1)", file=sys.stderr)
        return 1
    return 0
