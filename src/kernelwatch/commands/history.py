"""`kernelwatch history pull|push|check`: the shared results branch
(kernelwatch.results.history)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from kernelwatch.commands import common_args
from kernelwatch.engine.gitrepo import find_repo_root
from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import targets
from kernelwatch.results import history


def add_parser(sub: argparse._SubParsersAction) -> None:
    hist = sub.add_parser(
        "history", help="pull or push results/ from or to the shared results branch",
        description="Results from many runners (GPU kinds, CI jobs) accumulate on one git "
        "branch. `pull` adds the branch's result files to results/; `push` adds results/' "
        "new files to the branch, retrying when another runner landed first. Neither "
        "ever replaces a result file that exists, and both skip, naming it, a file that is "
        "not an asv result (a link, a file cut short). `check` lists such files on the "
        "branch (exit 1 when there are some); `check --repair` removes them from the branch "
        "in one commit (git's history keeps them).")
    hist.add_argument("history_command", choices=["pull", "push", "check"],
                      metavar="{pull,push,check}",
                      help="pull: the branch's result files into results/; push: results/' "
                      "new files onto the branch; check: list the branch's files that are not "
                      "asv results")
    hist.add_argument("--remote", default="origin",
                      help="git remote name or URL (default origin)")
    hist.add_argument("--branch", default="kernelwatch-results",
                      help="the results branch (default kernelwatch-results)")
    common_args.add_target(hist, "the library's results (results-DIST/), on the branch "
                           "BRANCH-DIST", needs_repo=False)
    hist.add_argument("--at", metavar="COMMIT",
                      help="with pull: the branch as it stood at this commit of it (40 hex "
                      "digits, as `git ls-remote REMOTE BRANCH` prints), so that jobs pulling "
                      "at different times read one state; the parts of a sharded run deal "
                      "their work from what they pulled")
    hist.add_argument("--repair", action="store_true",
                      help="with check: remove the files that are not asv results from the "
                      "branch (one commit, pushed)")
    hist.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return sync(find_repo_root(), args.history_command, remote=args.remote, branch=args.branch,
                target=args.target, repair=args.repair, at=args.at)


def sync(repo: Path, direction: str, *, remote: str = "origin",
         branch: str = history.DEFAULT_BRANCH, target: str | None = None,
         repair: bool = False, at: str | None = None) -> int:
    """Pull the branch's result files into results/, push results/' new files to it, or
    check it. A --target library's results (results-DIST/) go to a branch of their own,
    never mixed. 0 unless `check` found files that are not results and left them."""
    if repair and direction != "check":
        raise KernelwatchError("--repair goes with `kernelwatch history check`")
    if at and direction != "pull":
        raise KernelwatchError("--at goes with `kernelwatch history pull`")
    results = repo / "results"
    repair_command = shlex.join(["kernelwatch", "history", "check", "--repair", "--remote",
                                 remote, "--branch", branch]
                                + (["--target", target.partition("=")[0]] if target else []))
    if target:
        dist = targets.dist_of(target)
        results, branch = targets.results_dir(repo, dist), targets.history_branch(dist, branch)
    url = history.remote_url(repo, remote)
    if direction == "check":
        return _check(url, remote, branch, repair, repair_command)
    if direction == "pull":
        report = history.pull(results, url, branch, at)
        print(f"kernelwatch history: {len(report.added)} result files added from "
              f"{remote} {branch}" + (f" at {at[:12]}" if at else "")
              + f", {len(report.kept)} already here"
              + (f", {', '.join(report.merged)} merged" if report.merged else ""))
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
    for rel in report.repaired:
        where = "here" if direction == "pull" else "on the branch"
        print(f"kernelwatch history: {rel} {where} was not a readable result file; replaced "
              "by the good copy", file=sys.stderr)
    for line in report.left_here:
        print(f"kernelwatch history: not pushed: {results}/{line}. Move it out of "
              f"{results.name}/ (keep it if you want to repair it); the other files were "
              "pushed", file=sys.stderr)
    for line in report.bad_on_branch:
        print(f"kernelwatch history: skipped on {remote} {branch}: {line}", file=sys.stderr)
    if report.bad_on_branch:
        print(f"kernelwatch history: every other file was {direction}ed; "
              f"`{repair_command}` removes the skipped ones from the branch", file=sys.stderr)
    return 0


def _check(url: str, remote: str, branch: str, repair: bool, repair_command: str) -> int:
    found = history.check(url, branch, repair=repair)
    if not found.bad:
        print(f"kernelwatch history: {remote} {branch} holds {found.files} files, every one "
              "an asv result file in asv's shape")
        return 0
    for line in found.bad:
        print(f"kernelwatch history: not an asv result file: {line}")
    if found.removed:
        print(f"kernelwatch history: removed {len(found.bad)} files from {remote} {branch} "
              "in one commit (`git log -p` on the branch shows them)")
        return 0
    print(f"kernelwatch history: {len(found.bad)} of {found.files} files on {remote} {branch} "
          f"are skipped by every pull and push; `{repair_command}` removes them from the "
          "branch", file=sys.stderr)
    return 1
