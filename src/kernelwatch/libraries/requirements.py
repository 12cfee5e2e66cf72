"""A library's own requirements at each commit (and release) it is measured at: one asv
environment per requirement set, what an earlier commit installed never left behind.

A target commit asks for its dependencies in its build files (setup.py, pyproject.toml ...).
kernelwatch reads what it asks (the metadata its own build declares: pip builds it from the
commit's tree, as asv's build will), keeps torch fixed (the run's matrix axis, recorded in
every result) and has pip resolve the rest once (`pip install --dry-run --report`): the
exact versions of every package that commit needs beside torch, its *requirement set*.
A development commit asks for lower bounds (`compressed-tensors>=0.14.1a2`), which today's
index answers with releases that did not exist then and may have dropped what the commit
imports; so pip resolves as of the end of the commit's own day (`--uploaded-prior-to`): the
newest versions its developers could have installed that day (nightlies included). Packages
from indexes that record no upload time (a local mirror, find-links: torch here) are not held
back by it. Resolutions are cached per (requirements, day), so a rerun and every point of a
bisect get the same pins (`.kernelwatch/requirement-sets/`; delete it to resolve again).

The commits whose build files have one content share one asv environment: its name carries
KERNELWATCH_REQUIREMENTS=<key> (the content and the fixed torch). Their sets differ by what
was published between their days (a dependency's nightly), which `prepare` brings the
environment to for each commit, a few packages at most.

The environment holds the core of asv.conf.json's matrix (torch, setuptools, numpy, psutil).
asv's install command runs `python -m kernelwatch.libraries.requirements prepare` (this
interpreter) before it installs the commit's wheel: it checks that the wheel is the
distribution asked for (2019's commits build `neuralmagicML`, 2024's `sparseml-nightly`;
0.2-0.5's `llmcompressor-dev` is the library under another name), installs the commit's set
where the environment differs from it, removes every distribution that is neither the
environment's own, the set's, kernelwatch nor the library under this build's name (what an
earlier commit's build left, under another name), and installs kernelwatch once.

`--versions DIST=V1,V2` resolves each `DIST==V` alike, one environment per version.

What cannot be measured is said before anything is built, with the reason: a commit whose
build files name another distribution, whose metadata does not build, or whose requirements
do not resolve together with the fixed torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernelwatch.errors import KernelwatchError

ENV_VAR = "KERNELWATCH_REQUIREMENTS"
CACHE = Path(".kernelwatch") / "requirement-sets"
# The files a commit declares its requirements in; a commit that changes none of them asks
# for what its parent asked.
REQUIREMENT_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "requirements.txt")
# What every benchmark process imports beside the library (kernelwatch has no dependencies
# of its own): resolved with the library's requirements, so their pins agree.
KERNELWATCH_NEEDS = ("numpy", "psutil", "setuptools")
# What prepare keeps in an environment beside the set: the tools asv put there.
TOOLS = ("pip", "wheel", "setuptools")
STATE_FILE = "kernelwatch-requirements.json"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class RequirementSet:
    """The exact versions a commit (or release) needs beside the fixed ones."""

    key: str
    pins: tuple[str, ...]  # "name==version", sorted, the fixed ones and the library left out
    fixed: tuple[str, ...]  # "torch==2.13.0": what the run keeps fixed
    direct: tuple[str, ...] = ()  # the names the library itself asks for (the rest follow)

    def versions(self) -> dict[str, str]:
        return dict(p.split("==", 1) for p in self.pins)

    def file(self, repo: Path) -> Path:
        return repo / CACHE / f"{self.key}.txt"


@dataclass(frozen=True)
class NotMeasurable:
    """Why a commit or release cannot be measured here."""

    reason: str


# Where a group's commits find their set (prepare's --sets): a release measured at
# kernelwatch's commit is under this key.
ANY_COMMIT = "*"


@dataclass
class EnvGroup:
    """The commits (or the release) measured in one asv environment, and each one's set."""

    key: str  # names the environment (KERNELWATCH_REQUIREMENTS)
    sets: dict[str, RequirementSet]  # commit (or ANY_COMMIT) -> its set

    @property
    def commits(self) -> list[str]:
        return [c for c in self.sets if c != ANY_COMMIT]

    def first(self) -> RequirementSet:
        return next(iter(self.sets.values()))

    def file(self, repo: Path) -> Path:
        """The commit -> set file map prepare reads."""
        return repo / CACHE / f"env-{self.key}.json"

    def write(self, repo: Path) -> Path:
        path = self.file(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        known = json.loads(path.read_text()) if path.exists() else {}
        known.update({c: str(r.file(repo)) for c, r in self.sets.items()})
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        tmp.replace(path)
        return path


# ----------------------------------------------------------------------------- the cache


class _Cache:
    """`.kernelwatch/requirement-sets/cache.json`: metadata per build-file content, sets per
    (requirements, fixed); one file, written whole."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.path = repo / CACHE / "cache.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("metadata", {})
        self.data.setdefault("resolved", {})
        self.data.setdefault("sets", {})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def sources_key(repo: Path, commit: str) -> str:
    """What a commit's requirements depend on: the blobs of its build files."""
    listed = _git(repo, "ls-tree", commit, "--", *REQUIREMENT_FILES).stdout
    return hashlib.sha1(listed.encode()).hexdigest()[:16]


def release_of(repo: Path, commit: str) -> str | None:
    """The release tag a commit follows (`git describe --tags --abbrev=0`), or None."""
    r = _git(repo, "describe", "--tags", "--abbrev=0", commit)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def _pip(args: Sequence[str], env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})},
                          cwd=cwd)


def pip_reason(stderr: str) -> str:
    """pip's own words for a failure: its ERROR lines and what caused a conflict."""
    lines = [ln.strip() for ln in stderr.splitlines()]
    keep = [ln for ln in lines if ln.startswith("ERROR:") or " depends on " in ln
            or ln.startswith("The user requested")]
    return "; ".join(dict.fromkeys(keep))[:600] or (lines[-1] if lines else "no output")


def declared(repo: Path, commit: str, dist: str, cache: _Cache) -> dict | NotMeasurable:
    """{name, version, requires} of the distribution the commit builds (its metadata, as pip
    builds it from the commit's tree); cached per build-file content."""
    key = f"{canonical(dist)}:{sources_key(repo, commit)}"
    found = cache.data["metadata"].get(key)
    if found is None:
        found = _build_metadata(repo, commit)
        cache.data["metadata"][key] = found
        cache.save()
    if "error" in found:
        return NotMeasurable(found["error"])
    if canonical(found["name"]) not in build_names(dist):
        return NotMeasurable(f"it builds the distribution {found['name']} {found['version']}, "
                             f"not {dist} (the project under an earlier name): not the "
                             "library asked for")
    return found


def _build_metadata(repo: Path, commit: str) -> dict:
    release = release_of(repo, commit) or "0"
    version = release if re.fullmatch(r"\d+(\.\d+)*", release) else "0"
    with tempfile.TemporaryDirectory(prefix="kernelwatch-metadata-") as tmp:
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo,
                                 capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        report = Path(tmp) / "kernelwatch-report.json"
        # The exported tree has no .git for setuptools_scm to read the version from: the
        # release it follows stands in (the requirements do not depend on it).
        r = _pip(["install", "--dry-run", "--no-deps", "--ignore-installed", "-q",
                  "--report", str(report), tmp],
                 env={"SETUPTOOLS_SCM_PRETEND_VERSION": version})
        if r.returncode != 0 or not report.exists():
            return {"error": f"its metadata does not build here (pip: {pip_reason(r.stderr)})"}
        meta = json.loads(report.read_text())["install"][0]["metadata"]
    return {"name": meta["name"], "version": meta["version"],
            "requires": list(meta.get("requires_dist") or [])}


# pip's --uploaded-prior-to, which resolves as of a commit's day, came with pip 26.0.
DATED_PIP = (26, 0)


def dated_pip(found: str) -> bool:
    """Whether pip `found` ("26.0.1", "26.1b1", "none") has --uploaded-prior-to."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(found).release[:2] >= DATED_PIP
    except InvalidVersion:
        return False


def _require_dated_pip() -> None:
    """Refuse, naming the fix, where this interpreter's pip cannot resolve as of a day
    (before anything is resolved, so no failure of the tool is kept as the commit's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("pip")
    except PackageNotFoundError:
        found = "none"
    if not dated_pip(found):
        raise KernelwatchError(
            f"a library's requirements are resolved as of each commit's day with pip's "
            f"--uploaded-prior-to, which needs pip >= {'.'.join(map(str, DATED_PIP))}; "
            f"{sys.executable} has pip {found}: {sys.executable} -m pip install -U "
            f"'pip>={'.'.join(map(str, DATED_PIP))}'")


def resolve(requires: Iterable[str], fixed: dict[str, str], repo: Path, cache: _Cache,
            leave_out: Iterable[str] = (), before: str | None = None
            ) -> RequirementSet | NotMeasurable:
    """The set of `requires` (requirement strings, extras' ones dropped) with `fixed`
    ({name: matrix value, pip flags allowed}) kept: pip resolves them together once, from
    what was uploaded before `before` (an ISO date) where given."""
    from packaging.requirements import Requirement

    fixed_names = {canonical(n) for n in fixed}
    wanted = []
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if canonical(req.name) not in fixed_names:
            wanted.append(str(req))
    wanted += [n for n in KERNELWATCH_NEEDS if n not in {canonical(Requirement(w).name)
                                                         for w in wanted}]
    fixed_lines = [f"{name}=={value.split()[0]}" for name, value in sorted(fixed.items())]
    flags = [f for value in fixed.values() for f in value.split()[1:]]
    if before:
        flags.append(f"--uploaded-prior-to={before}")
    request = sorted(wanted) + fixed_lines + flags
    rkey = hashlib.sha1("\n".join(request).encode()).hexdigest()[:16]
    found = cache.data["resolved"].get(rkey)
    if found is not None and "no such option" in found.get("error", ""):
        found = None  # an older pip's refusal of a flag: not the commit's to keep
    if found is None:
        if before:
            _require_dated_pip()
        found = _resolve(request)
        cache.data["resolved"][rkey] = found
        cache.save()
    if "error" in found:
        what = ", ".join(fixed_lines)
        when = f", from what was uploaded before {before[:10]}" if before else ""
        return NotMeasurable(f"its requirements do not resolve together with {what}{when} "
                             f"(pip: {found['error']})")
    dropped = fixed_names | {canonical(n) for n in leave_out}
    pins = tuple(sorted(p for p in found["pins"] if canonical(p.split("==")[0]) not in dropped))
    key = hashlib.sha1("\n".join(pins + tuple(fixed_lines)).encode()).hexdigest()[:10]
    direct = tuple(sorted({canonical(Requirement(w).name) for w in wanted} - dropped
                          - set(KERNELWATCH_NEEDS)))
    rset = RequirementSet(key, pins, tuple(fixed_lines), direct)
    path = rset.file(repo)
    if not path.exists() or cache.data["sets"].get(key, {}).get("direct") != list(direct):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{p}\n" for p in pins))
        cache.data["sets"][key] = {"pins": list(pins), "fixed": list(fixed_lines),
                                   "direct": list(direct)}
        cache.save()
    return rset


def _resolve(request: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="kernelwatch-resolve-") as tmp:
        reqs = Path(tmp) / "requirements.in"
        reqs.write_text("\n".join(r for r in request if not r.startswith("-")) + "\n")
        report = Path(tmp) / "report.json"
        r = _pip(["install", "--dry-run", "--ignore-installed", "-q", "--report", str(report),
                  *[r for r in request if r.startswith("-")], "-r", str(reqs)])
        if r.returncode != 0 or not report.exists():
            return {"error": pip_reason(r.stderr)}
        installs = json.loads(report.read_text())["install"]
    return {"pins": sorted(f"{canonical(i['metadata']['name'])}=={i['metadata']['version']}"
                           for i in installs)}


# ----------------------------------------------------------------------------- commits


def _libraries(dist: str) -> list:
    from kernelwatch import workloads

    return [lib for name in workloads.WORKLOADS
            if (lib := workloads.get(name).libraries.get(dist)) is not None]


def supported_range(dist: str) -> tuple[str, str] | None:
    """(specifier, why not before it) that the workloads declare for `dist`'s adapter (their
    `libraries`), or None."""
    found = _libraries(dist)
    return (found[0].supported, found[0].why_not_before) if found else None


def build_names(dist: str) -> set[str]:
    """The distribution names a build of `dist` may carry: its own, and the others its
    declaration names (the dev and nightly builds of some releases)."""
    return {canonical(dist)} | {canonical(n) for lib in _libraries(dist)
                                for n in lib.build_names}


def below_supported(repo: Path, commit: str, dist: str,
                    supported: tuple[str, str] | None) -> NotMeasurable | None:
    """Why a commit is before what the adapter supports, by the release it follows; None
    where it is not (or no release tag says)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if supported is None:
        return None
    release = release_of(repo, commit)
    try:
        version = Version(release) if release else None
    except InvalidVersion:
        version = None
    if version is None or SpecifierSet(supported[0]).contains(version, prereleases=True):
        return None
    floor = supported[0].lstrip(">=")
    return NotMeasurable(f"not measurable before {floor} (it follows the release {release}): "
                         f"{supported[1]}")


def day_end(repo: Path, commit: str) -> str | None:
    """The end (UTC) of the day the commit was made: what its developers could install."""
    import datetime

    r = _git(repo, "log", "-1", "--format=%ct", commit)
    if not r.stdout.strip():
        return None
    day = datetime.datetime.fromtimestamp(int(r.stdout.strip()), datetime.UTC).date()
    return f"{day.isoformat()}T23:59:59Z"


def sets_for_commits(repo: Path, target_repo: Path, dist: str, commits: Sequence[str],
                     torch: Sequence[str], say: Callable[[str], object] = print
                     ) -> tuple[dict[tuple[str, str], EnvGroup], dict[str, NotMeasurable]]:
    """{(torch, environment key): its group} and {commit: why not} for a target's commits,
    each torch version of the matrix apart; the groups in the order of their first commit."""
    cache = _Cache(repo)
    supported = supported_range(dist)
    groups: dict[tuple[str, str], EnvGroup] = {}
    refused: dict[str, NotMeasurable] = {}
    seen_sources: set[str] = set()
    resolved_before = len(cache.data["resolved"])
    for commit in commits:
        why = below_supported(target_repo, commit, dist, supported)
        source = sources_key(target_repo, commit)
        if why is None:
            if f"{canonical(dist)}:{source}" not in cache.data["metadata"] and \
                    source not in seen_sources:
                say(f"kernelwatch: reading the requirements {dist} declares at "
                    f"{commit[:8]} (once per content of its build files)")
            seen_sources.add(source)
            meta = declared(target_repo, commit, dist, cache)
            why = meta if isinstance(meta, NotMeasurable) else None
        if why is not None:
            refused[commit] = why
            continue
        for version in torch:
            rset = resolve(meta["requires"], {"torch": version}, repo, cache,
                           leave_out=[dist], before=day_end(target_repo, commit))
            if isinstance(rset, NotMeasurable):
                refused[commit] = rset
                break
            key = hashlib.sha1(f"{canonical(dist)}:{source}:{version}".encode()
                               ).hexdigest()[:10]
            groups.setdefault((version, key), EnvGroup(key, {})).sets[commit] = rset
    cache = _Cache(repo)  # resolve() saved what it added
    if len(cache.data["resolved"]) > resolved_before:
        count = len(cache.data["resolved"]) - resolved_before
        say(f"kernelwatch: resolved the requirements of {count} commit day"
            f"{'s' * (count != 1)} (pip, once each; kept in .kernelwatch/requirement-sets)")
    return groups, refused


def set_for_release(repo: Path, dist: str, version: str, torch: str
                    ) -> EnvGroup | NotMeasurable:
    """The environment of a release of `dist` (its own requirements, as pip finds them now)
    with torch fixed; below what the adapter supports is not measurable."""
    from packaging.specifiers import SpecifierSet

    supported = supported_range(dist)
    if supported and not SpecifierSet(supported[0]).contains(version, prereleases=True):
        return NotMeasurable(f"not measurable before {supported[0].lstrip('>=')}: "
                             f"{supported[1]}")
    rset = resolve([f"{dist}=={version}"], {"torch": torch}, repo, _Cache(repo),
                   leave_out=[dist])
    if isinstance(rset, NotMeasurable):
        return rset
    return EnvGroup(rset.key, {ANY_COMMIT: rset})


def describe_group(group: EnvGroup, others: Iterable[EnvGroup] = ()) -> str:
    """A group by what its first commit's set has that the others' first sets do not, and
    how many sets its commits bring (their days' nightlies)."""
    label = describe(group.first(), [o.first() for o in others])
    distinct = len({r.key for r in group.sets.values()})
    return label + (f"; {distinct} sets over its commits' days" if distinct > 1 else "")


def describe(rset: RequirementSet, others: Iterable[RequirementSet] = (),
             limit: int = 4) -> str:
    """A set by its pins that differ from the others', what the library asks for directly
    first (its direct pins where no other set is given)."""
    mine = rset.versions()
    others = list(others)
    differing = ({n for o in others for n, v in o.versions().items() if mine.get(n) != v}
                 | {n for o in others for n in mine if n not in o.versions()}
                 if others else set(rset.direct))
    ordered = sorted((n for n in differing if n in mine),
                     key=lambda n: (n not in rset.direct, n))
    shown = [f"{n} {mine[n]}" for n in ordered[:limit]]
    more = f" +{len(ordered) - limit} more" if len(ordered) > limit else ""
    return (", ".join(shown) + more) or f"requirement set {rset.key}"


SET_IN_NAME = re.compile(rf"-{ENV_VAR}([0-9a-f]+)")


def base_env(env_name: str) -> str:
    """An environment's name without its requirement set: what the commits of one library
    history share (a series is followed across sets)."""
    return SET_IN_NAME.sub("", env_name)


def set_of(env_name: str) -> str | None:
    """The key of the requirement set an environment's name carries, or None."""
    m = SET_IN_NAME.search(env_name)
    return m.group(1) if m else None


def set_at(repo: Path, env_name: str, commit: str) -> RequirementSet | None:
    """The set a commit was measured with in an environment of this checkout, or None."""
    key = set_of(env_name)
    path = repo / CACHE / f"env-{key}.json"
    if key is None or not path.exists():
        return None
    found = requirements_of(path, commit) if commit else None
    known = known_sets(repo)
    return known.get(found.stem) if found else None


def known_sets(repo: Path) -> dict[str, RequirementSet]:
    """Every set this checkout resolved, by key."""
    cache = _Cache(repo)
    return {k: RequirementSet(k, tuple(v["pins"]), tuple(v["fixed"]),
                              tuple(v.get("direct", ())))
            for k, v in cache.data["sets"].items()}


# ----------------------------------------------------------------------------- asv's side


def config_for(conf: dict, group: EnvGroup, repo: Path, *, dist: str | None,
               kernelwatch_source: Path | None) -> dict:
    """asv config `conf` turned to one environment group: named by its key, each commit's
    set installed (and checked, and cleaned) by `prepare` before the project's own install.
    `dist`: the library whose wheel asv builds (a target), checked by name; None where the
    project is kernelwatch itself (--versions). `kernelwatch_source`: kernelwatch's tree to
    install where asv does not (a target)."""
    conf = json.loads(json.dumps(conf))
    matrix = conf.setdefault("matrix", {})
    matrix.setdefault("env", {})[ENV_VAR] = [group.key]
    sets = group.write(repo) if group.sets else group.file(repo)
    prepare = [f"in-dir={{env_dir}} {sys.executable} -m kernelwatch.libraries.requirements prepare "
               f"--env {{env_dir}} --sets {sets} --commit {{commit}}"]
    if dist:
        prepare[0] += f" --wheel {{wheel_file}} --dist {dist}"
    if kernelwatch_source:
        prepare[0] += f" --kernelwatch {kernelwatch_source}"
    conf["install_command"] = prepare + list(conf.get("install_command") or [])
    return conf


def _site_packages(env: Path) -> Path:
    found = sorted(env.glob("lib/python*/site-packages"))
    if not found:
        raise KernelwatchError(f"{env} has no site-packages")
    return found[0]


def installed(env: Path) -> dict[str, str]:
    """{canonical name: version} of the distributions in an environment (read from their
    metadata folders: no interpreter started)."""
    out = {}
    for info in _site_packages(env).glob("*.dist-info"):
        name, _, version = info.name[:-len(".dist-info")].partition("-")
        out[canonical(name)] = version
    for info in _site_packages(env).glob("*.egg-info"):
        name = info.name.split("-")[0]
        out.setdefault(canonical(name), "")
    return out


def requirements_of(sets: Path, commit: str) -> Path:
    """The set file of `commit` in a group's map (ANY_COMMIT for a release's)."""
    known = json.loads(sets.read_text())
    found = known.get(commit) or known.get(ANY_COMMIT)
    if not found:
        raise KernelwatchError(f"no requirement set for {commit[:12]} in {sets}: kernelwatch "
                               "resolves it before asv runs; run through kernelwatch")
    return Path(found)


def prepare(env: Path, requirements: Path, wheel: str | None = None, dist: str | None = None,
            kernelwatch: Path | None = None) -> list[str]:
    """Make `env` hold its own packages, the set of `requirements`, kernelwatch and nothing
    else before asv installs the library's wheel; the lines said. Exits through
    KernelwatchError when the wheel is not `dist`."""
    said = []
    built = canonical(dist or "")
    if wheel and dist:
        from packaging.utils import parse_wheel_filename

        name, version, *_ = parse_wheel_filename(Path(wheel).name)
        built = canonical(name)
        if built not in build_names(dist):
            raise KernelwatchError(
                f"the commit built the distribution {name} {version}, not {dist}: not the "
                "library asked for, so nothing is installed or measured for it")
    state_path = env / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    now = installed(env)
    if "base" not in state:
        # The environment as asv made it (the matrix's torch and core), before any set.
        state["base"] = sorted(n for n in now if n not in {canonical(dist or ""),
                                                           "kernelwatch"})
    pins = [p.strip() for p in requirements.read_text().splitlines() if p.strip()]
    wanted = {canonical(p.split("==")[0]): p.split("==")[1] for p in pins}
    # The library under the name this build has stays: asv's install replaces it
    # (--force-reinstall); what a build under another name left (llmcompressor-dev beside
    # llmcompressor) goes.
    keep = set(state["base"]) | set(wanted) | set(TOOLS) | {"kernelwatch", built}
    stale = sorted(n for n in now if n not in keep)
    if stale:
        _env_pip(env, ["uninstall", "-y", *stale])
        said.append(f"removed what an earlier install left: {', '.join(stale)}")
    missing = [f"{n}=={v}" for n, v in wanted.items() if now.get(n) != v]
    if missing:
        _env_pip(env, ["install", "--no-deps", *missing])
        said.append(f"installed {len(missing)} of the {len(pins)} pins of "
                    f"{requirements.stem}")
    if kernelwatch is not None and state.get("kernelwatch") != str(kernelwatch):
        _env_pip(env, ["install", "--no-deps", "--no-build-isolation", "--force-reinstall",
                       str(kernelwatch)])
        state["kernelwatch"] = str(kernelwatch)
    state["requirements"] = requirements.stem
    state_path.write_text(json.dumps(state, indent=1))
    return said


def _env_pip(env: Path, args: list[str]) -> None:
    r = subprocess.run([str(env / "bin" / "python"), "-m", "pip", *args], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise KernelwatchError(f"pip {args[0]} in {env} failed: {pip_reason(r.stderr)}")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kernelwatch.libraries.requirements prepare ...`: asv's install command
    (see prepare)."""
    p = argparse.ArgumentParser(prog="python -m kernelwatch.libraries.requirements")
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--env", type=Path, required=True)
    prep.add_argument("--sets", type=Path, required=True)
    prep.add_argument("--commit", required=True)
    prep.add_argument("--wheel")
    prep.add_argument("--dist")
    prep.add_argument("--kernelwatch", type=Path)
    args = p.parse_args(argv)
    try:
        for line in prepare(args.env, requirements_of(args.sets, args.commit), args.wheel,
                            args.dist, args.kernelwatch):
            print(f"kernelwatch: {line}", flush=True)
    except KernelwatchError as exc:
        print(f"kernelwatch: not measurable: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
