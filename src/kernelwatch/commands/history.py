"""`kernelwatch history pull|push`: the shared results branch (kernelwatch.history)."""

from __future__ import annotations

import argparse
import sys

from kernelwatch import history
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
    hist.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return sync(find_repo_root(), args.history_command, remote=args.remote, branch=args.branch)


def sync(repo, direction: str, *, remote: str = "origin",
         branch: str = history.DEFAULT_BRANCH) -> int:
    """Pull the branch's result files into results/, or push results/' new files to it."""
    results = repo / "results"
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
