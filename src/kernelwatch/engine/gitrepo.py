"""git, as kernelwatch asks it: the checkout, commits by name, the commits of a range."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kernelwatch.errors import KernelwatchError


def find_repo_root(start: Path | None = None, *, needs_git: bool = True) -> Path:
    """The checkout: the nearest directory at or above `start` holding asv.conf.json. With
    `needs_git`, it must be a git repository with a commit, since asv files every result
    under one."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "asv.conf.json").is_file():
            if needs_git and commit_of(d, "HEAD") is None:
                raise KernelwatchError(
                    f"{d} is not a git repository with a commit (or git is not installed): "
                    "asv files every result under the commit it measured. Run kernelwatch in "
                    "a clone (`git clone URL`), or make this copy one: `git init && git add -A "
                    "&& git commit -m snapshot`")
            return d
    raise KernelwatchError(
        "no asv.conf.json here or above; run kernelwatch from inside the kernelwatch repository"
    )


def commit_of(repo: Path, name: str) -> str | None:
    """The full hash git gives `name` (a branch, tag or revision), or None (also where
    `repo` is no git repository, or git is missing)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                             cwd=repo, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def resolve_commit(repo: Path, name: str) -> str:
    commit = commit_of(repo, name)
    if commit is None:
        raise KernelwatchError(f"git cannot resolve {name!r} to a commit")
    return commit


def commits_in(repo: Path, rev_range: str) -> list[str]:
    """The commits asv runs for a range: `git rev-list --first-parent`, as asv's git plugin
    does, so kernelwatch plans the same commits asv will run."""
    out = subprocess.run(["git", "rev-list", "--first-parent", rev_range, "--"], cwd=repo,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise KernelwatchError(
            f"git cannot resolve the range {rev_range!r}: {out.stderr.strip()}. "
            "Use a range such as HEAD~2..HEAD (the last two commits), or HEAD^! for HEAD alone"
        )
    return out.stdout.split()


def git_output(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
