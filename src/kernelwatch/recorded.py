"""What is already recorded, so that a run measures only what is missing.

asv's `--skip-existing-successful` works per benchmark, not per parameter combination: once
any combination of a benchmark is recorded for a (commit, environment), asv skips the whole
benchmark there. And a combination a run did not select is stored as NaN, which that flag
takes for a success. So a second run on the same commit that selects other parameters of the
same benchmark (another block size, another variant) would silently measure nothing.

Without the flag, asv measures what the `-b` regexes select and keeps the stored values of
every combination they do not select. kernelwatch therefore plans its asv calls itself: for
each (commit, environment) it reads the recorded results with asv's own loader, and excludes
the recorded combinations from the regexes with a negative lookahead. Commits and
environments with the same recorded set share one asv call: in the usual cases (nothing
recorded yet, or everything) that is one call.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asv import results as asv_results

from kernelwatch.report.results import UNREADABLE, unreadable


def selectable_names(benchmarks: dict, regexes: Sequence[str]) -> set[str]:
    """The names asv matches `-b` against (`name(param0, param1, ...)` for a parametrized
    benchmark) that any of `regexes` selects, from asv's benchmarks.json content."""
    names = set()
    for key, bench in benchmarks.items():
        if not isinstance(bench, dict) or "name" not in bench:
            continue  # benchmarks.json's "version" entry
        if bench.get("params"):
            candidates = [f"{key}({', '.join(p)})" for p in itertools.product(*bench["params"])]
        else:
            candidates = [key]
        names.update(n for n in candidates if any(re.search(rx, n) for rx in regexes))
    return names


def _is_value(v: object) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def recorded_names(results_dir: Path, machine: str, commit: str, env_name: str,
                   benchmarks: dict) -> set[str]:
    """Combinations with a measured value (not failed, not unrun) stored for this commit and
    environment, at the benchmark's current version (asv measures a changed benchmark
    again)."""
    path = results_dir / asv_results.get_filename(machine, commit, env_name)
    if not path.is_file():
        return set()
    try:
        res = asv_results.Results.load(str(path))
    except UNREADABLE as exc:
        raise unreadable([f"{path} ({exc})"]) from exc
    done = set()
    for key in res.get_result_keys(benchmarks):
        params = benchmarks[key].get("params") or []
        values = res.get_result_value(key, params)
        if not params:
            if _is_value(values):
                done.add(key)
            continue
        for combo, v in zip(itertools.product(*params), values, strict=True):
            if _is_value(v):
                done.add(f"{key}({', '.join(combo)})")
    return done


def excluding(regex: str, names: Iterable[str]) -> str:
    """`regex`, less the exact names given (those it would select)."""
    names = sorted(n for n in names if re.search(regex, n))
    if not names:
        return regex
    body = regex[1:] if regex.startswith("^") else ".*" + regex
    return "^(?!(?:" + "|".join(re.escape(n) for n in names) + ")$)" + body


@dataclass
class Call:
    """One asv call: these commits x these environments, these regexes. `kept` counts the
    recorded results its regexes leave out (known from the benchmarks.json of the last
    discovery; a benchmark added since is not counted, and asv measures it)."""

    commits: list[str]
    envs: list[str]
    regexes: list[str]
    kept: int = 0


def plan(results_dir: Path, machine: str, commits: Sequence[str], envs: Sequence[str],
         chunks: Sequence[Sequence[str]]) -> list[Call]:
    """The asv calls that measure what each chunk of regexes selects and is not yet recorded,
    for every commit x environment, chunk after chunk. A call whose regexes select nothing at
    all makes asv say "No benchmarks selected": everything there is recorded."""
    path = results_dir / "benchmarks.json"
    try:
        benchmarks = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        benchmarks = {}  # asv rewrites it at discovery; nothing known to be recorded then
    recorded = {(env, commit): recorded_names(results_dir, machine, commit, env, benchmarks)
                for env in envs for commit in commits} if benchmarks else {}
    calls = []
    for regexes in chunks:
        selected = selectable_names(benchmarks, regexes)
        groups: dict[tuple[str, frozenset[str]], list[str]] = defaultdict(list)
        for env in envs:
            for commit in commits:
                done = recorded.get((env, commit), set()) & selected
                groups[(env, frozenset(done))].append(commit)
        merged: dict[tuple[frozenset[str], tuple[str, ...]], list[str]] = defaultdict(list)
        for (env, done), group_commits in groups.items():
            merged[(done, tuple(group_commits))].append(env)
        calls += [Call(list(group_commits), group_envs,
                       [excluding(rx, done) for rx in regexes], len(done))
                  for (done, group_commits), group_envs in merged.items()]
    return calls
