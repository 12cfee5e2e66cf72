"""`kernelwatch history pull|push`: the shared results branch (kernelwatch.history)."""

from __future__ import annotations

import argparse
import sys

from kernelwatch import history, targets
from kernelwatch.gitrepo import find_repo_root


def add_parser(sub: argparse._SubParsersAction) -> None:
    hist = sub.add_parser(
        "history", help="pull or push results/ from or to the shared results branch",
        description="Results from many runners (GPU kinds, CI jobs) accumulate on one git "
        "branch. `pull` adds the branch's result files to results/; `push` adds results/' "
        "new files to the branch, retrying when another runner landed first. Neither "
        "ever replaces a result file that exists.")
    hist.add_argument("history_command", choices=["pull", "push"])
    hist.add_argument("--remote", default="origin",
                      help="git remote name or URL (default origin)")
    hist.add_argument("--branch", default="kernelwatch-results",
                      help="the results branch (default kernelwatch-results)")
    hist.add_argument("--target", metavar="DIST[=REPO]",
                      help="the library's results (results-DIST/), on the branch "
                      "BRANCH-DIST")
    hist.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return sync(find_repo_root(), args.history_command, remote=args.remote, branch=args.branch,
                target=args.target)


def sync(repo, direction: str, *, remote: str = "origin",
         branch: str = history.DEFAULT_BRANCH, target: str | None = None) -> int:
    """Pull the branch's result files into results/, or push results/' new files to it. A
    --target library's results (results-DIST/) go to a branch of their own, never mixed."""
    results = repo / "results"
    if target:
        dist = targets.dist_of(target)
        results, branch = targets.results_dir(repo, dist), targets.history_branch(dist, branch)
    url = history.remote_url(repo, remote)
    if direction == "pull":
        report = history.pull(results, url, branch)
        print(f"kernelwatch history: {len(report.added)} result files added from "
              f"{remote} {branch}, {len(report.kept)} already here")
    else:
        machines = sorted({p.parent.name for p in results.glob("*/*.json")})
        report = history.push(results, url, branch,
                              message=f"results from {', '.join(machines)}")
        print(f"kernelwatch history: {len(report.added)} result files added to {remote} "
              f"{branch}, {len(report.kept)} already there"
              + (f", {', '.join(report.merged)} merged" if report.merged else ""))
    for rel in report.conflicts:
        print(f"kernelwatch history: {rel} differs between here and the branch; both kept "
              "as they are (a result file is never replaced)", file=sys.stderr)
    return 0
