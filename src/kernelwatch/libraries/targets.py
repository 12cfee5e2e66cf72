"""Targets: the commits and releases of a library a workload exercises, measured by
kernelwatch's own benchmarks.

`kernelwatch run --target DIST=REPO [RANGE]` hands asv a derived configuration whose project
is the library (`project: DIST`, `repo: REPO`): asv checks out and builds the library at each
commit of RANGE (`pip wheel --no-deps`, installed with `--no-deps`, so the matrix's torch and
pins stay), while kernelwatch itself (its HEAD, exported once) is installed beside it by the
install command and its `benchmarks/` are the suite, fixed across the range. Only the variants
each workload declares for DIST run (`TARGETS` in the workload's module), and the results are
filed apart, in `results-<DIST>/` (site: `html-<DIST>/`), so no history mixes two projects'
commits.

`--versions DIST=V1,V2,...` is the other axis: released versions of DIST side by side in
asv's matrix, at kernelwatch's own commits (torch included: the same as `--torch`).

Everything here takes plain arguments; the CLI only glues flags to these functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError

# What every workload imports in an asv environment, kept from asv.conf.json's matrix when a
# target environment takes only the target's own requirements.
CORE_REQUIREMENTS = ("torch", "setuptools", "numpy", "psutil")
# Distributions installed with their dependencies in a --versions matrix; any other
# distribution is installed with --no-deps beside the declared requirements, so pip never
# swaps the matrix's torch for the one a release pins.
WITH_DEPS = ("torch",)


@dataclass(frozen=True)
class Target:
    dist: str
    repo: Path  # a local git repository (a URL is mirrored under .kernelwatch/targets/)
    url: str | None = None  # the web address of its commits, where known

    @property
    def label(self) -> str:
        return f"{self.dist}={self.repo}"


# ----------------------------------------------------------------------------- declarations


def declarations() -> dict[str, dict[str, dict[str, list[str]]]]:
    """DIST -> {workload: {parameter: values}}: what each workload declares it exercises of
    each distribution (its variants' libraries and its `targets`; a list of values is a list
    of variants; an empty dict is every case)."""
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for name in workloads.WORKLOADS:
        for dist, selection in workloads.get(name).all_targets().items():
            if not isinstance(selection, dict):
                selection = {"variant": list(selection)}
            out.setdefault(dist, {})[name] = {k: list(v) for k, v in selection.items()}
    return dict(sorted(out.items()))


def declared_for(dist: str) -> dict[str, dict[str, list[str]]]:
    """{workload: {parameter: values}} declared for `dist`; bad input when none is."""
    found = declarations()
    if dist not in found:
        raise KernelwatchError(
            f"no workload declares the distribution {dist!r}; declared: "
            + ", ".join(f"{d} ({', '.join(w)})" for d, w in found.items())
            + ". A workload declares one as a variant's library or in its targets "
            "(workloads/declaration.py)")
    return found[dist]


def requirements_for(dist: str, base_req: dict) -> dict[str, list[str]]:
    """The matrix `req` of a target environment: the core requirements as asv.conf.json has
    them, plus what the workloads declare importing `dist` needs (`TARGET_REQUIREMENTS`), or,
    where none declares, the rest of asv.conf.json's matrix; never `dist` itself (it is the
    project)."""
    declared: dict[str, str] = {}
    for name in declared_for(dist):
        declared.update(workloads.get(name).target_requirements.get(dist, {}))
    req = {k: list(v) for k, v in base_req.items() if k in CORE_REQUIREMENTS}
    if declared:
        req.update({k: [v] for k, v in declared.items()})
    else:
        req.update({k: list(v) for k, v in base_req.items()})
    req.pop(dist, None)
    return req


def selection_for(dist: str, workload: str | None, chosen: dict[str, list[str]]
                  ) -> list[tuple[str, dict[str, list[str]]]]:
    """(workload, parameter choices) to run for `dist`: each declaring workload (or the one
    named) with its declared values, narrowed by the user's choices; a chosen value outside
    the declared ones is bad input naming them."""
    declared = declared_for(dist)
    if workload is not None and workload not in declared:
        raise KernelwatchError(
            f"workload {workload} declares nothing of {dist}; the workloads that do: "
            f"{', '.join(declared)} (or drop --workload)")
    out = []
    for name, selection in declared.items():
        if workload is not None and name != workload:
            continue
        merged = {k: list(v) for k, v in chosen.items()} if name == workload else {}
        for param, values in selection.items():
            asked = merged.get(param)
            if asked:
                outside = [v for v in asked if v not in values]
                if outside:
                    raise KernelwatchError(
                        f"{param} {', '.join(outside)} of {name} does not exercise {dist}; "
                        f"the {param}s that do: {', '.join(values)}")
            else:
                merged[param] = list(values)
        out.append((name, merged))
    return out


# ----------------------------------------------------------------------------- the target


def parse_spec(spec: str) -> tuple[str, str]:
    dist, sep, where = spec.partition("=")
    if not sep or not dist or not where:
        raise KernelwatchError(f"--target takes DIST=REPO, not {spec!r} (e.g. "
                               "llmcompressor=../llm-compressor: a local path or a git URL)")
    return dist, where


def dist_of(spec: str) -> str:
    """DIST of `DIST` or `DIST=REPO` (report and history need no repository), checked."""
    dist = spec.partition("=")[0]
    declared_for(dist)
    return dist


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def _is_url(where: str) -> bool:
    return bool(re.match(r"^(\w+://|git@)", where))


def resolve(spec: str, kernelwatch_repo: Path) -> Target:
    """The target of `--target DIST=REPO`: DIST must be declared by a workload; REPO a git
    repository (a URL is mirrored under .kernelwatch/targets/ and fetched each time)."""
    dist, where = parse_spec(spec)
    declared_for(dist)
    if _is_url(where):
        mirror = kernelwatch_repo / ".kernelwatch" / "targets" / f"{dist}.git"
        if mirror.exists():
            _follow(mirror, where, dist)
            r = subprocess.run(["git", "-C", str(mirror), "fetch", "-q", "--prune", "--tags",
                                "origin"], capture_output=True, text=True)
        else:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(["git", "clone", "-q", "--mirror", where, str(mirror)],
                               capture_output=True, text=True)
        if r.returncode != 0:
            raise KernelwatchError(f"cannot fetch the target {where}: {r.stderr.strip()[-300:]}"
                                   ". Give a git URL this machine can reach, or a local clone")
        return _with_commits(Target(dist, mirror, commit_url(where)), where)
    repo = Path(where).expanduser().resolve()
    if repo.exists() and not repo.is_dir():
        raise KernelwatchError(f"--target {spec}: {repo} is a file, not a folder; give the "
                               "path of a git clone of the library (or its git URL)")
    if not repo.is_dir():
        raise KernelwatchError(f"--target {spec}: {repo} does not exist; give the path of a "
                               "git clone of the library (or its git URL)")
    top = _git(repo, "rev-parse", "--show-toplevel")
    bare = _git(repo, "rev-parse", "--is-bare-repository").stdout.strip() == "true"
    if top.returncode != 0 and not bare:
        raise KernelwatchError(f"--target {spec}: {repo} is not a git repository; clone the "
                               "library there (git clone URL) or give its git URL")
    if not bare:
        repo = Path(top.stdout.strip())
    origin = _git(repo, "remote", "get-url", "origin").stdout.strip()
    return _with_commits(Target(dist, repo, commit_url(origin) if origin else None), where)


def _with_commits(target: Target, where: str) -> Target:
    """`target`, or bad input when its repository has no commit at all (every range of it
    fails, whichever is tried)."""
    if not _git(target.repo, "rev-list", "-n", "1", "--all").stdout.strip():
        raise KernelwatchError(
            f"--target {target.dist}={where}: the repository {target.repo} has no commits yet; "
            "commit the library's code there, or give the clone (or URL) that has its history")
    return target


def _follow(mirror: Path, url: str, dist: str) -> None:
    """Point the mirror of `dist` at `url` where it was cloned from another URL, and say so:
    the fetch that follows (--prune, a mirror's refs/*) then leaves only `url`'s branches
    and tags, so the range is read in the repository named."""
    before = _git(mirror, "remote", "get-url", "origin").stdout.strip()
    if before == url:
        return
    r = _git(mirror, "remote", "set-url", "origin", url)
    if r.returncode != 0:
        raise KernelwatchError(f"cannot point the mirror {mirror} at {url}: "
                               f"{r.stderr.strip()[-300:]}; remove that folder and run again")
    print(f"kernelwatch: the mirror of {dist} ({mirror}) followed {before or 'another URL'}; "
          f"it now follows {url}, as --target says (results-{dist}/ keeps the results of "
          "both, told apart by commit)", flush=True)


def commit_url(remote: str) -> str | None:
    """The prefix asv links a commit hash to (`show_commit_url`), for GitHub and GitLab
    remotes; None for anything else."""
    m = re.match(r"^(?:https://|git@)(github\.com|gitlab\.com)[/:](.+?)(?:\.git)?/?$", remote)
    return f"https://{m.group(1)}/{m.group(2)}/commit/" if m else None


def default_branch(target: Target) -> str:
    """The target's default branch: origin's HEAD where known, else the checked-out branch,
    else main or master."""
    for args in (("symbolic-ref", "--short", "refs/remotes/origin/HEAD"),
                 ("symbolic-ref", "--short", "HEAD")):
        r = _git(target.repo, *args)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip().removeprefix("origin/")
    for name in ("main", "master"):
        if _git(target.repo, "rev-parse", "--verify", "-q", name).returncode == 0:
            return name
    raise KernelwatchError(f"{target.repo} has no main or master branch and HEAD is "
                           "detached; name a range (e.g. v1.0..HEAD)")


def default_range(target: Target) -> str:
    """The target's last two commits of its default branch (all of them, where it has
    fewer than three: BRANCH~2 does not exist)."""
    branch = default_branch(target)
    if _git(target.repo, "rev-parse", "--verify", "-q", f"{branch}~2^{{commit}}").returncode:
        return branch
    return f"{branch}~2..{branch}"


def commits(target: Target, rev_range: str) -> list[str]:
    """The commits asv runs for `rev_range` in the target, newest first (first parents, as
    asv's git plugin walks them); bad input when the range selects none."""
    r = _git(target.repo, "rev-list", "--first-parent", rev_range, "--")
    if r.returncode != 0 or not r.stdout.split():
        why = r.stderr.strip() or "it selects no commits"
        default = default_range(target)
        what = "its last two" if ".." in default else "all of its few"
        other = (f"e.g. {default} ({what}), or COMMIT^! for one" if default != rev_range
                 else f"COMMIT^! for one (`git -C {target.repo} log --oneline` lists them)")
        raise KernelwatchError(
            f"the range {rev_range!r} has no commits in the target {target.dist} "
            f"({target.repo}): {why}. Use a range of its commits: {other}")
    return r.stdout.split()


def commit(target: Target, name: str) -> str:
    r = _git(target.repo, "rev-parse", "--verify", "-q", f"{name}^{{commit}}")
    if r.returncode != 0:
        raise KernelwatchError(f"{name!r} is not a commit of the target {target.dist} "
                               f"({target.repo}); `git -C {target.repo} log --oneline` lists them")
    return r.stdout.strip()


def subjects(repo: Path, hashes: list[str]) -> dict[str, str]:
    """commit -> its subject line."""
    if not hashes:
        return {}
    r = _git(repo, "show", "-s", "--format=%H %s", *hashes)
    return dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)


# ----------------------------------------------------------------------------- filing


def results_dir(kernelwatch_repo: Path, dist: str) -> Path:
    return kernelwatch_repo / f"results-{dist}"


def html_dir(kernelwatch_repo: Path, dist: str) -> Path:
    return kernelwatch_repo / f"html-{dist}"


def history_branch(dist: str, base: str) -> str:
    """The results branch of a target: its own, so a pull never mixes two projects."""
    return f"{base}-{dist}"


# ----------------------------------------------------------------------------- asv config


def kernelwatch_source(kernelwatch_repo: Path) -> Path:
    """kernelwatch's HEAD exported once to .kernelwatch/targets/kernelwatch-<hash>/: what a
    target run installs in its environments and takes its benchmarks from, whatever the
    working tree holds. Named after the commit, so asv reinstalls when it changes (the path
    is part of the install command, which asv's install checksum covers)."""
    head = _git(kernelwatch_repo, "rev-parse", "HEAD").stdout.strip()
    if not head:
        raise KernelwatchError("kernelwatch's checkout has no commit to install; commit first")
    dest = kernelwatch_repo / ".kernelwatch" / "targets" / f"kernelwatch-{head[:12]}"
    if not (dest / "pyproject.toml").exists():
        tmp = dest.with_name(dest.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"],
                                 cwd=kernelwatch_repo, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.replace(dest)
    return dest


def target_config(base: dict, target: Target, kernelwatch_repo: Path, *,
                  torch_versions: list[str] | None = None, env_dir: str | None = None,
                  branch: str | None = None, requirement_set=None) -> dict:
    """asv.conf.json turned to the target: asv's project is the library, kernelwatch (its
    HEAD) is installed beside it by the install command, the suite is kernelwatch's. With a
    `requirement_set` (requirements.EnvGroup: commits that ask for the same, each with its
    set), the environment holds the core of the matrix and requirements.prepare installs and
    checks each commit's set; without one, the workloads' TARGET_REQUIREMENTS (or the matrix)."""
    source = kernelwatch_source(kernelwatch_repo)
    conf = json.loads(json.dumps(base))
    req = requirements_for(target.dist, base.get("matrix", {}).get("req", {}))
    if requirement_set is not None:
        req = {k: list(v) for k, v in base.get("matrix", {}).get("req", {}).items()
               if k in CORE_REQUIREMENTS}
    if torch_versions:
        req["torch"] = list(torch_versions)
    conf.update({
        "project": target.dist,
        "project_url": (target.url or "").removesuffix("commit/"),
        "repo": str(target.repo),
        "branches": [branch or default_branch(target)],
        "matrix": {"req": req},
        # Isolated build: the library's own build requirements (setuptools_scm ...).
        "build_command": ["python -m pip wheel --no-deps -w {build_cache_dir} {build_dir}"],
        "install_command": [
            "in-dir={env_dir} python -m pip install --no-deps {wheel_file}",
            f"in-dir={{env_dir}} python -m pip install --no-deps --no-build-isolation "
            f"--force-reinstall {source}"],
        "benchmark_dir": str(source / "benchmarks"),
        "results_dir": str(results_dir(kernelwatch_repo, target.dist)),
        "html_dir": str(html_dir(kernelwatch_repo, target.dist)),
        "env_dir": env_dir or str(kernelwatch_repo / base.get("env_dir", ".asv/env")),
    })
    conf.pop("repo_subdir", None)
    if target.url:
        conf["show_commit_url"] = target.url
    if requirement_set is not None:
        from kernelwatch.libraries import requirements

        # requirements.prepare removes what another commit's build left and installs
        # kernelwatch once per environment; the wheel replaces the library's last build.
        conf["uninstall_command"] = []
        conf["install_command"] = [
            "in-dir={env_dir} python -m pip install --no-deps --force-reinstall {wheel_file}"]
        conf = requirements.config_for(conf, requirement_set, kernelwatch_repo,
                                       dist=target.dist, kernelwatch_source=source)
    return conf


def write_config(kernelwatch_repo: Path, conf: dict) -> Path:
    """The config file, named after its content (as asvrun.derived_config names its own)."""
    text = json.dumps(conf, indent=4)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    path = kernelwatch_repo / f".asv-kernelwatch-{digest}.conf.json"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def run_selections(dist: str, workload: str | None, chosen: dict[str, list[str]], *,
                   quick: bool, metrics: list[str] | None, tracks: list[str] | None
                   ) -> list[tuple[str, dict[str, list[str]], list[str] | None,
                                   list[str] | None]]:
    """`kernelwatch run`'s selections (workload, choices, metric families, tracks) for
    `dist`: the declared cases, narrowed by the user's choices; with `quick`, each
    workload's QUICK case for the parameters the declaration leaves open, and its quick
    metrics and tracks unless the user named some."""
    out = []
    for name, merged in selection_for(dist, workload, chosen):
        quick_part = workloads.get(name).suites[workloads.QUICK_SUITE][0]
        families, names = metrics, tracks
        if quick:
            merged = {**{k: v for k, v in quick_part.params.items() if k not in merged},
                      **merged}
            families = families or list(quick_part.metrics)
            names = names or list(quick_part.tracks or ()) or None
        out.append((name, merged, families, names))
    return out


def only_workload(dist: str) -> str | None:
    """The workload declaring `dist` when there is just one (so --param needs no
    --workload), else None."""
    declared = declared_for(dist)
    return next(iter(declared)) if len(declared) == 1 else None
