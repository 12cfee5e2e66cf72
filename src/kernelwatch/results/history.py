"""One history from many runners: asv result files accumulate on a git branch.

Why a branch: every runner already has git and a token that may push to its repository; a
branch keeps the history beside the code it measures, with an audit trail (one commit per
run), and `kernelwatch history pull` on any clone rebuilds results/ for `asv publish`.

The rules that keep concurrent runners from losing each other's work:
- a push only adds files: a result file already on the branch is never replaced (asv names
  them `<machine>/<commit>-<environment>.json`, so two runners never write the same name
  unless they measured the same thing on the same machine);
- `benchmarks.json` (asv's list of benchmarks, not a result) is merged key by key;
- two result files of one name that are shards of one run (`kernelwatch run --shard K/N`:
  disjoint parameter combinations) become one, combination by combination
  (merge_results), and so do their kernel inventories, case by case
  (`<machine>/<commit>-<environment>.kernels`); any other difference keeps both apart;
- a rejected push (someone landed first) fetches the branch again, re-adds, and retries.

The branch is data written by every runner that may push, so it is checked as such: pull
and push move regular files in asv's layout only, each with the shape asv writes
(kernelwatch.results.files). Anything else (a link, a file outside the layout, a name asv
could not have written, a file cut short) is skipped with its path, never copied and never
followed, and the other files go on: one bad file must not stop every runner that pulls
before it measures. `check` lists such files on the branch; `check(repair=True)` removes
them in one commit.
"""

from __future__ import annotations

import filecmp
import json
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernelwatch import inventory_file
from kernelwatch.errors import KernelwatchError
from kernelwatch.results import files as result_files

DEFAULT_BRANCH = "kernelwatch-results"
MERGED = ("benchmarks.json",)  # asv metadata merged key by key; every other file is added


@dataclass
class Merge:
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # present and identical
    conflicts: list[str] = field(default_factory=list)  # present and different: theirs kept
    merged: list[str] = field(default_factory=list)
    # A copy that failed the checks (cut short, another shape), replaced by the good one.
    repaired: list[str] = field(default_factory=list)
    left_here: list[str] = field(default_factory=list)  # "path: why" of ours, not pushed
    bad_on_branch: list[str] = field(default_factory=list)  # "path: why", left on the branch


def _git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise KernelwatchError(f"git {' '.join(args)} failed: {r.stderr.strip()[-500:]}")
    return r


def merge_into(src: Path, dest: Path, files: list[str], *, aside: Path | None = None
               ) -> Merge:
    """Add `files` of `src` (each one that passed result_files.check_file) to `dest`
    without replacing a result file already there; nothing is written through a link in
    `dest`. A regular file of `dest` that fails the checks is no result: it is replaced by
    the good one, moved under `aside` first where given (a local results directory; on
    the branch, git's history keeps it)."""
    report = Merge()
    for rel in files:
        a, b = src / rel, dest / rel
        above = [p for p in b.parents if dest in p.parents]
        if b.is_symlink() or any(p.is_symlink() or (p.exists() and not p.is_dir())
                                 for p in above):
            report.conflicts.append(rel)  # never written through a link, nor over a file
        elif not b.exists():
            b.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(a, b)
            report.added.append(rel)
        elif not b.is_file():
            report.conflicts.append(rel)  # a directory by that name: left as it is
        elif filecmp.cmp(a, b, shallow=False):
            report.kept.append(rel)
        elif not _passes(dest, rel):
            moved = result_files.move_aside(b, aside) if aside else None
            result_files.write_whole(b, a.read_text())
            report.repaired.append(rel + (f" (the damaged copy is in {moved})" if moved
                                          else ""))
        elif b.suffix == inventory_file.SUFFIX:
            merged = _kernels_merge(a, b)
            if merged is None:
                report.conflicts.append(rel)
            elif merged:
                result_files.write_whole(b, merged)
                report.merged.append(rel)
            else:
                report.kept.append(rel)
        elif (shard := _shard_merge(a, b)) is not None:  # shards of one run: one file
            result_files.write_whole(b, shard)
            report.merged.append(rel)
        elif rel in MERGED:
            ours, theirs = json.loads(a.read_text()), json.loads(b.read_text())
            merged = {**theirs, **ours}
            if merged != theirs:
                result_files.write_whole(b, json.dumps(merged, indent=4, sort_keys=True))
                report.merged.append(rel)
            else:
                report.kept.append(rel)
        else:
            report.conflicts.append(rel)
    return report


def _passes(root: Path, rel: str) -> bool:
    try:
        result_files.check_file(root, rel)
        return True
    except result_files.Refused:
        return False


def _kernels_merge(a: Path, b: Path) -> str | None:
    """Two inventory files of one (machine, commit, environment) as one text, case by case
    (the shards of one run measure different cases): "" when `a` adds nothing, None when
    a case differs between the two (then neither is replaced)."""
    ours, theirs = inventory_file.read(a), inventory_file.read(b)
    if ours is None or theirs is None or any(
            case in theirs and theirs[case] != entry for case, entry in ours.items()):
        return None
    merged = {**theirs, **ours}
    return "" if merged == theirs else json.dumps(merged, indent=1, sort_keys=True)


# Columns of an asv (v2) result that hold one entry per parameter combination.
_PER_COMBINATION = ("result", "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75",
                    "stats_number", "stats_repeat", "samples")


def _unrun(v: object) -> bool:
    return isinstance(v, float) and v != v  # asv's NaN: not selected in that run


def merge_results(ours: dict, theirs: dict) -> dict | None:
    """One asv result file from two shards' files of one (machine, commit, environment):
    each combination's values from whichever side ran it. None when the two are not shards
    of one run (another commit or environment, another benchmark version or parameters) or
    when both ran one combination (then neither is replaced: history keeps both apart)."""
    same = ("commit_hash", "env_name", "result_columns", "version")
    if any(ours.get(k) != theirs.get(k) for k in same) or not isinstance(
            ours.get("results"), dict) or not isinstance(theirs.get("results"), dict):
        return None
    columns = ours["result_columns"]
    merged = {**theirs, "results": dict(theirs["results"]),
              "durations": {**ours.get("durations", {}), **theirs.get("durations", {})}}
    for bench, row in ours["results"].items():
        other = theirs["results"].get(bench)
        if other is None:
            merged["results"][bench] = row
            continue
        a, b = dict(zip(columns, row, strict=False)), dict(zip(columns, other, strict=False))
        if a.get("params") != b.get("params") or a.get("version") != b.get("version"):
            return None
        values_a, values_b = a.get("result") or [], b.get("result") or []
        if not a.get("params") or len(values_a) != len(values_b):
            if row != other:
                return None
            continue
        out = dict(b)
        for i, (va, vb) in enumerate(zip(values_a, values_b, strict=True)):
            if _unrun(va):
                continue
            if not _unrun(vb) and va != vb:
                return None
            for col in _PER_COMBINATION:
                if isinstance(a.get(col), list) and isinstance(out.get(col), list):
                    out[col] = list(out[col])
                    out[col][i] = a[col][i]
        merged["results"][bench] = [out.get(c) for c in columns[:len(other)]]
    return merged


def _shard_merge(a: Path, b: Path) -> str | None:
    """The merged text of two asv result files that are shards of one run (kernelwatch run
    --shard K/N on several runners), or None (merge_results)."""
    if a.suffix != ".json" or a.name in ("machine.json", *MERGED):
        return None
    try:
        theirs = json.loads(b.read_text())
        merged = merge_results(json.loads(a.read_text()), theirs)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    # Nothing of ours to add: the two differ in something else, which is a conflict.
    return None if merged is None or merged == theirs else json.dumps(merged, indent=None)


def _fetch(work: Path, remote: str, branch: str, at: str | None = None) -> bool:
    """Check out the branch's newest state in `work`, or its commit `at`; False when the
    branch does not exist yet."""
    if at is not None:
        _fetch_commit_of(work, remote, branch, at)
        ref = at
    else:
        r = _git("fetch", "-q", "--depth", "1", remote,
                 f"+refs/heads/{branch}:refs/remotes/store/{branch}", cwd=work, check=False)
        if r.returncode != 0:
            if "couldn't find remote ref" in r.stderr or "not our ref" in r.stderr:
                return False
            git_says = " ".join(r.stderr.split())[-400:]
            raise KernelwatchError(f"cannot fetch {branch} from {remote!r} (--remote takes a "
                                   "git remote name or URL this machine can reach); git says: "
                                   f"{git_says}")
        ref = f"refs/remotes/store/{branch}"
    _git("checkout", "-q", "-f", "-B", "work", ref, cwd=work)
    _git("clean", "-q", "-fdx", cwd=work)
    return True


def _fetch_commit_of(work: Path, remote: str, branch: str, at: str) -> None:
    """Fetch commit `at` with its files, refused unless it is one of the branch's commits."""
    if not re.fullmatch(r"[0-9a-f]{40}", at):
        raise KernelwatchError(f"--at takes the 40-hex commit of {branch} to pull (as "
                               f"`git ls-remote REMOTE {branch}` prints it), not {at!r}")
    r = _git("fetch", "-q", "--depth", "1", remote, at, cwd=work, check=False)
    if r.returncode == 0:
        # The branch's commits without their files: is `at` one of them?
        r = _git("fetch", "-q", "--filter=tree:0", remote,
                 f"+refs/heads/{branch}:refs/remotes/store/{branch}", cwd=work, check=False)
    if r.returncode != 0:
        git_says = " ".join(r.stderr.split())[-300:]
        raise KernelwatchError(
            f"cannot fetch commit {at[:12]} of {branch} from {remote!r} (in a workflow, "
            "re-run the whole run, so that its `records` job names the branch's commit "
            f"anew; by hand, pull without --at for the newest state); git says: {git_says}")
    if _git("merge-base", "--is-ancestor", at, f"refs/remotes/store/{branch}", cwd=work,
            check=False).returncode != 0:
        raise KernelwatchError(
            f"commit {at[:12]} is not on {branch} of {remote!r}: --at takes a commit of "
            f"the results branch (`git ls-remote REMOTE {branch}` names its newest)")


def remote_url(repo: Path, remote: str) -> str:
    """The URL git fetches for `remote` in `repo`: a configured remote's URL (a relative
    path made absolute, since the fetch runs elsewhere), else `remote` itself (a URL or a
    path)."""
    r = _git("remote", "get-url", remote, cwd=repo, check=False)
    url = r.stdout.strip() if r.returncode == 0 else remote
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):  # a local path
        path = Path(url).expanduser()
        path = path if path.is_absolute() else (repo / path).resolve()
        # not a path, nor git's scp-like host:path
        named = not any(c in remote for c in "/:") and not remote.startswith((".", "~"))
        if r.returncode != 0 and named and not path.exists():
            names = _git("remote", cwd=repo, check=False).stdout.split()
            raise KernelwatchError(
                f"--remote {remote!r} is neither a git remote of {repo} ("
                + (f"it has {', '.join(names)}" if names else "it has none")
                + ") nor a path: name one, a path or a URL, or add it with `git remote add "
                f"{remote} URL`")
        url = str(path)
    return url


def pull(results: Path, remote: str, branch: str = DEFAULT_BRANCH,
         at: str | None = None) -> Merge:
    """Add the branch's result files to `results` (a local result is never replaced; a local
    copy that fails the checks is moved aside for the branch's). A file on the branch that
    fails the checks is skipped (Merge.bad_on_branch); the rest are pulled. `at`: the
    branch as it stood at that commit of it, so that runners that pull at different times
    read one state (the parts of a sharded run deal their work from it)."""
    with tempfile.TemporaryDirectory(prefix="kernelwatch-history-") as d:
        work = Path(d)
        _git("init", "-q", cwd=work)
        if not _fetch(work, remote, branch, at):
            return Merge()
        good, refused = result_files.partition(work)
        results.mkdir(parents=True, exist_ok=True)
        report = merge_into(work, results, good, aside=result_files.aside_dir(results))
        report.bad_on_branch = list(refused.values())
        return report


def push(results: Path, remote: str, branch: str = DEFAULT_BRANCH, *, message: str,
         retries: int = 8) -> Merge:
    """Land `results`' new files on the branch: add, commit, push; on a rejected push fetch
    again and retry (with a random back-off, so racing runners spread out). A local file
    that fails the checks is not pushed (Merge.left_here); one on the branch is left as it
    is (Merge.bad_on_branch: `check --repair` removes it) unless ours replaces it."""
    good, refused = result_files.partition(results)
    if not any(result_files.kind_of(rel) == "result" for rel in good):
        raise KernelwatchError(
            f"no result files under {results} to push; run first"
            + (f" (these fail the checks: {'; '.join(list(refused.values())[:5])})"
               if refused else ""))
    with tempfile.TemporaryDirectory(prefix="kernelwatch-history-") as d:
        work = Path(d)
        _git("init", "-q", cwd=work)
        for attempt in range(1, retries + 1):
            if not _fetch(work, remote, branch):
                _git("checkout", "-q", "--orphan", "work", cwd=work, check=False)
                _git("rm", "-rfq", "--ignore-unmatch", ".", cwd=work)
            report = merge_into(results, work, good)
            report.left_here = list(refused.values())
            report.bad_on_branch = list(result_files.partition(work)[1].values())
            if not (report.added or report.merged or report.repaired):
                return report
            _git("add", "-A", cwd=work)
            _git("-c", "user.name=kernelwatch", "-c", "user.email=kernelwatch@localhost",
                 "commit", "-q", "-m", message, cwd=work)
            r = _git("push", "-q", remote, f"HEAD:refs/heads/{branch}", cwd=work, check=False)
            if r.returncode == 0:
                return report
            if attempt == retries:
                raise KernelwatchError(
                    f"could not push to {branch} after {retries} tries (last: "
                    f"{r.stderr.strip()[-300:]}); your results are still in {results}: "
                    "run `kernelwatch history push` again")
            time.sleep(random.uniform(0.2, 1.0) * attempt)
    raise AssertionError("unreachable")


@dataclass
class Check:
    files: int  # on the branch, bad ones included
    bad: list[str]  # "path: why"
    removed: bool = False  # the bad ones were removed from the branch in a commit


def check(remote: str, branch: str = DEFAULT_BRANCH, *, repair: bool = False,
          retries: int = 8) -> Check:
    """The branch's files that fail the checks. With `repair`, they are removed from the
    branch in one commit (git's history keeps them), retried as push retries."""
    with tempfile.TemporaryDirectory(prefix="kernelwatch-history-") as d:
        work = Path(d)
        _git("init", "-q", cwd=work)
        for attempt in range(1, retries + 1):
            if not _fetch(work, remote, branch):
                raise KernelwatchError(f"{remote} has no branch {branch}: nothing to check "
                                       "(`kernelwatch history push` creates it)")
            good, refused = result_files.partition(work)
            found = Check(len(good) + len(refused), list(refused.values()))
            if not refused or not repair:
                return found
            for rel in refused:
                _git("rm", "-q", "--", rel, cwd=work)
            _git("-c", "user.name=kernelwatch", "-c", "user.email=kernelwatch@localhost",
                 "commit", "-q", "-m", f"remove {len(refused)} files that are not asv results "
                 "(kernelwatch history check --repair)", "-m", "\n".join(refused.values()),
                 cwd=work)
            r = _git("push", "-q", remote, f"HEAD:refs/heads/{branch}", cwd=work, check=False)
            if r.returncode == 0:
                found.removed = True
                return found
            if attempt == retries:
                raise KernelwatchError(
                    f"could not push the repair to {branch} after {retries} tries (last: "
                    f"{r.stderr.strip()[-300:]}); nothing was removed: run it again")
            time.sleep(random.uniform(0.2, 1.0) * attempt)
    raise AssertionError("unreachable")
