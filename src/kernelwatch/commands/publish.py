"""`kernelwatch publish`: asv's site (offline) and kernelwatch's pages, built beside the last
site from a checked copy of results/ and moved into place only when whole."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path

from kernelwatch import inventory_file, workloads
from kernelwatch.commands import common_args
from kernelwatch.engine.asvrun import (
    asv_config,
    asv_executable,
    derived_config,
    history_branch,
    run_checked,
    waiting_lock,
)
from kernelwatch.engine.gitrepo import commits_in, find_repo_root
from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import requirements, targets
from kernelwatch.regression import fidelity
from kernelwatch.report import fidelity as fidelity_view
from kernelwatch.report import offline, site
from kernelwatch.results import files as result_files


def add_parser(sub: argparse._SubParsersAction) -> None:
    pub = sub.add_parser("publish", help="asv publish, plus kernelwatch's speedup pages")
    pub.add_argument("--branch", help="the branch whose commits the graphs show (default: "
                     "asv.conf.json's, or the checked-out branch where that one does not exist)")
    pub.add_argument("--skip-corrupt", action="store_true",
                     help="publish every readable result and name the unreadable ones "
                     "(default: an unreadable file stops the publish); results/ is never "
                     "modified")
    common_args.add_target(pub, "publish the library's history (results-DIST/) to html-DIST/")
    pub.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return publish(find_repo_root(), branch=args.branch, skip_corrupt=args.skip_corrupt,
                   target=args.target)


def publish(repo: Path, *, branch: str | None = None, skip_corrupt: bool = False,
            target: str | None = None) -> int:
    """asv's site and kernelwatch's pages from results/ (a --target library's results-DIST/,
    over the library's commits), into html/ (html-DIST/) whole or not at all."""
    library = targets.resolve(target, repo) if target else None
    # Each site has its own working folders and lock: `publish` and `publish --target` run
    # side by side, and a second publish of one site waits for the first.
    site_name = f"site-{library.dist}" if library else "site"
    with site_lock(repo / ".kernelwatch" / f"publish-{site_name}.lock", site_name):
        return _publish(repo, library, target, site_name, branch=branch,
                        skip_corrupt=skip_corrupt)


def site_lock(path: Path, site_name: str) -> contextlib.AbstractContextManager:
    """One publish of a site at a time: two would share its working folders and its html
    folder, and each could swap in the other's half-built site."""
    return waiting_lock(
        path, f"another kernelwatch publish of this checkout's {site_name} is under way",
        "interrupted while waiting for the other publish; the site was not touched")


def _publish(repo: Path, library: targets.Target | None, target: str | None, site_name: str,
             *, branch: str | None, skip_corrupt: bool) -> int:
    results = targets.results_dir(repo, library.dist) if library else repo / "results"
    if not any(results.glob("*/*.json")):
        raise KernelwatchError(
            f"no results to publish yet; run `kernelwatch run --target {target}` first"
            if library else "no results to publish yet; run `kernelwatch run --quick` first")
    # The site is built from a checked copy (results/ is never modified): a file that is not
    # what asv writes, or holds a name asv could not have written, never reaches a page.
    checked = repo / ".kernelwatch" / f"publish-results-{site_name}"
    refused = result_files.checked_copy(results, checked)
    # An inventory only names the kernels behind a change: a damaged one is left out of
    # the site, never the reason there is no site.
    blocking = [line for line in refused
                if not line.split(": ", 1)[0].endswith(inventory_file.SUFFIX)]
    if blocking and not skip_corrupt:
        raise KernelwatchError(
            f"these files under {results.name}/ cannot be published: "
            + "; ".join(f"{results}/{line}" for line in blocking)
            + f". Move them out of {results.name}/ (keep them if you want to repair them) and "
            "run again, or `kernelwatch publish --skip-corrupt` to publish the rest; the site "
            "was not touched")
    for line in refused:
        print(f"kernelwatch: left out of the site (unreadable, kept as it is in "
              f"{results.name}/): {results}/{line}", file=sys.stderr)
    # Built beside, moved into place only when whole: a failing publish leaves the last site.
    building = repo / ".kernelwatch" / f"building-{site_name}"
    if building.exists():
        shutil.rmtree(building)
    if library:
        html_dir = targets.html_dir(repo, library.dist)
        branch = branch or targets.default_branch(library)
        conf = targets.target_config(asv_config(repo), library, repo, branch=branch)
        config = targets.write_config(repo, {**conf, "results_dir": str(checked),
                                             "html_dir": str(building)})
        history = targets.commits(library, branch)
    else:
        html_dir = repo / asv_config(repo).get("html_dir", "html")
        branch = history_branch(repo, branch)
        config = derived_config(repo, branch=branch, results_dir=str(checked),
                                html_dir=str(building))
        history = commits_in(repo, branch or asv_config(repo).get("branches", ["HEAD"])[0])
    run_checked([asv_executable(), "--config", str(config), "publish"], repo)
    # The change table orders commits as the branch does (dates tie within a second); a
    # library's commits carry their subjects and link to its web history where known.
    site.write(checked, building, workloads.bytes_for_benchmark,
               baseline_for=workloads.baseline_variant,
               flops=workloads.flops_for_benchmark, gate=workloads.gate_failure,
               reference_for=workloads.reference_variant,
               commit_order={c: len(history) - i for i, c in enumerate(history)},
               commit_subjects=targets.subjects(library.repo, history) if library else None,
               commit_url=library.url if library else None,
               env_key=requirements.base_env if library else None,
               **fidelity_for_site(repo))
    for left in offline.make_offline(building):
        print(f"kernelwatch: warning: {left} still loads from the network (asv's pages "
              "changed: add it to scripts/vendor-asv-assets.py and kernelwatch.report."
              "offline.CDN)", file=sys.stderr)
    replace_dir(building, html_dir)
    page = html_dir / "kernelwatch" / "overview.html"
    what = f" ({library.dist}'s history over its commits)" if library else ""
    print(f"\nPublished{what}. Open {page} (kernelwatch: the overview, speedups, regressions, "
          "roofline, write-up tables)")
    print(f"and {html_dir / 'index.html'} (asv's history of every series).")
    print(f"To serve it: asv preview   (or: python -m http.server -d {html_dir})")
    return 0


def replace_dir(new: Path, dest: Path) -> None:
    """Put the finished directory `new` where `dest` is, and the old one away."""
    old = new.with_name(new.name + "-old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except OSError:  # another filesystem: copy
        shutil.copytree(new, dest)
        shutil.rmtree(new)
    shutil.rmtree(old, ignore_errors=True)


def fidelity_for_site(repo: Path) -> dict:
    """The newest `kernelwatch fidelity` figures per machine, as site.write takes them."""
    tables, thresholds = {}, {}
    for machine, (env, analyses, skipped) in fidelity.latest_analyses(repo).items():
        headers, body = fidelity_view.table(analyses, skipped)
        tables[machine] = (env, headers, body, fidelity_view.NOTE)
        thresholds[machine] = fidelity.series_thresholds(analyses)
    return {"fidelity": tables, "thresholds": thresholds}
