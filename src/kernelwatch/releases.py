"""Released versions of a library side by side (`--versions DIST=V1,V2,...`): through asv's
matrix, at kernelwatch's own commits. torch is installed with its dependencies; any other
declared library with --no-deps beside what the workloads say importing it needs, so the
matrix's torch stays."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from kernelwatch import targets, workloads
from kernelwatch.asvrun import index_versions
from kernelwatch.errors import KernelwatchError


def versions_matrix(base: dict, dist: str, versions: list[str]) -> dict:
    """asv.conf.json with `dist` at each of `versions` in the matrix. torch (WITH_DEPS) is
    installed with its dependencies; any other library with --no-deps, beside what the
    workloads declare importing it needs, so the matrix's torch stays."""
    conf = json.loads(json.dumps(base))
    req = conf.setdefault("matrix", {}).setdefault("req", {})
    if dist in targets.WITH_DEPS:
        req[dist] = list(versions)
        return conf
    for name in targets.declared_for(dist):
        for k, v in getattr(workloads.get(name), "TARGET_REQUIREMENTS", {}).get(dist, {}).items():
            req.setdefault(k, [v])
    req[dist] = [f"{v} --no-deps" for v in versions]
    return conf


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
    return dist, versions


def check_installable(dist: str, versions: list[str]) -> None:
    """Bad input naming the versions pip finds, when pip cannot install one of `versions`
    (asked before any environment is built: a failed build costs minutes)."""
    missing, available = [], ""
    for v in versions:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                            "--ignore-installed", "-q", f"{dist}=={v}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            missing.append(v)
            m = re.search(r"\(from versions: ([^)]*)\)", r.stderr)
            available = m.group(1) if m else (available or index_versions(dist) or "")
    if missing:
        raise KernelwatchError(
            f"pip cannot install {dist} {', '.join(missing)}"
            + (f"; the versions pip finds: {available}" if available else
               " (pip found none: check the name and the index)"))


def version_label(value: str) -> str:
    """A matrix value as a version: its pip flags dropped ("0.14.0 --no-deps" -> 0.14.0)."""
    return value.split()[0] if value.split() else value
