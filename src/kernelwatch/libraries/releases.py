"""Released versions of a library side by side (`--versions DIST=V1,V2,...`): through asv's
matrix, at kernelwatch's own commits. torch is installed with its dependencies; any other
declared library with --no-deps beside what the workloads say importing it needs, so the
matrix's torch stays."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import targets


def versions_matrix(base: dict, dist: str, versions: list[str], *,
                    requirements: bool = True) -> dict:
    """asv.conf.json with `dist` at each of `versions` in the matrix. torch (WITH_DEPS) is
    installed with its dependencies; any other library with --no-deps, beside what the
    workloads declare importing it needs (`requirements`; without, the core of the matrix
    only: a version's own requirement set is installed by the install command's prepare), so
    the matrix's torch stays."""
    conf = json.loads(json.dumps(base))
    req = conf.setdefault("matrix", {}).setdefault("req", {})
    if dist in targets.WITH_DEPS:
        req[dist] = list(versions)
        return conf
    if not requirements:
        for name in list(req):
            if name not in targets.CORE_REQUIREMENTS:
                del req[name]
    for name in targets.declared_for(dist) if requirements else ():
        for k, v in workloads.get(name).target_requirements.get(dist, {}).items():
            req.setdefault(k, [v])
    # Without the declared requirements, the run installs with PIP_NO_DEPS (see
    # NO_DEPS_ENV): a pip flag in the value would put a space in the environment's name,
    # which a result file's name may not hold.
    req[dist] = [f"{v} --no-deps" if requirements else v for v in versions]
    return conf


# What keeps pip from resolving a release's dependencies when asv builds its environment
# (requirements.prepare installs the release's own requirement set, torch's included, instead).
NO_DEPS_ENV = {"PIP_NO_DEPS": "1"}


def parse_versions(spec: str) -> tuple[str, list[str]]:
    dist, sep, values = spec.partition("=")
    versions = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not dist or not versions:
        raise KernelwatchError(f"--versions takes DIST=V1,V2,... (exact versions), not {spec!r}"
                               " (e.g. torch=2.13.0,2.14.1)")
    bad = [v for v in versions if not re.fullmatch(r"[0-9][0-9A-Za-z.+!_-]*", v)]
    if bad:
        raise KernelwatchError(f"--versions {dist}: {', '.join(bad)} is not an exact version "
                               "(asv's matrix takes exact versions only, e.g. 2.13.0)")
    if dist not in targets.WITH_DEPS:
        targets.declared_for(dist)
    unique = list(dict.fromkeys(versions))
    if len(unique) < len(versions):
        twice = sorted({v for v in versions if versions.count(v) > 1})
        print(f"kernelwatch: --versions {dist} lists {', '.join(twice)} more than once; each "
              "version is one environment, measured once", file=sys.stderr, flush=True)
    return dist, unique


def index_versions(name: str, newest: int = 12) -> str | None:
    """The newest versions of `name` that pip's configured index offers (`pip index
    versions`), for a message; None where pip cannot say."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Available versions: (.+)", out.stdout)
    if not m:
        return None
    versions = [v.strip() for v in m.group(1).split(",")]
    more = f" (and {len(versions) - newest} older)" if len(versions) > newest else ""
    return ", ".join(versions[:newest]) + more


def check_installable(dist: str, versions: list[str]) -> None:
    """Bad input when pip cannot install one of `versions` (asked before any environment is
    built: a failed build costs minutes): a version pip does not find, with the versions it
    finds; a version it finds but will not install (a constraint or pin in pip's own
    configuration), with pip's reason."""
    failed: dict[str, str] = {}  # version -> pip's first ERROR line
    available = ""
    for v in dict.fromkeys(versions):
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                            "--ignore-installed", "-q", f"{dist}=={v}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            errors = re.findall(r"^ERROR: (.+)$", r.stderr, re.MULTILINE)
            failed[v] = errors[0] if errors else r.stderr.strip()[-300:]
            m = re.search(r"\(from versions: ([^)]*)\)", r.stderr)
            available = m.group(1) if m else available
    if not failed:
        return
    available = available or index_versions(dist) or ""
    found = {x.strip().split(" (")[0] for x in available.split(",")}
    refused = [v for v in failed if v in found]
    absent = [v for v in failed if v not in found]
    parts = []
    if absent:
        parts.append(f"pip cannot install {dist} {', '.join(absent)}"
                     + (f"; the versions pip finds: {available}" if available else
                        " (pip found none: check the name and the index)"))
    if refused:
        parts.append(
            f"pip finds {dist} {', '.join(refused)} but will not install it here (pip: "
            f"{failed[refused[0]]}): a constraint or pin in pip's configuration (`pip config "
            "list`: constraint, PIP_CONSTRAINT) can forbid a version; `python -m pip install "
            f"--dry-run --no-deps {dist}=={refused[0]}` shows pip's whole reason")
    raise KernelwatchError(". ".join(parts))


def version_label(value: str) -> str:
    """A matrix value as a version: its pip flags dropped ("0.14.0 --no-deps" -> 0.14.0)."""
    return value.split()[0] if value.split() else value
