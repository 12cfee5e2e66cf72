"""What to measure: from a selection (workload, parameter values, metric families, tracks)
to asv's `-b` regexes, the quick set, the chunks of one asv call each, and the asv calls
that measure only what is not yet recorded.

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

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError, check_choices, unknown_name
from kernelwatch.results import UNREADABLE, unreadable

QUICK_COMPILE_METRICS = ("cold_compile", "recompiles")

# (workload, chosen params, metric families, track names or None): what one regex selects.
Selection = tuple[str, dict, list[str] | None, Sequence[str] | None]
ENVIRONMENT_REGEX = r"^environment\.Environment\.track_\w+$"


def check_metrics(workload: str, metrics: Sequence[str] | None) -> None:
    families = workloads.get(workload).BENCHMARKS
    for m in metrics or ():
        if m not in families:
            raise unknown_name("metric", m, families, where=workload)


def selection_regex(workload: str, chosen: dict[str, list[str] | None],
                    metrics: list[str] | None, tracks: Sequence[str] | None = None) -> str:
    """An asv `-b` regex: asv matches it against `name(param0, param1, ...)`, the params in
    the workload's PARAMS order. `tracks` narrows the classes' track_ methods by name."""
    module = workloads.get(workload)
    for name, values in chosen.items():
        if values and name not in module.PARAMS:
            raise KernelwatchError(f"workload {workload} has no {name} parameter; its "
                                   f"parameters: {', '.join(module.PARAMS)}")
    check_choices(module.PARAMS, chosen, where=workload)
    check_metrics(workload, metrics)

    def alt(values):
        return "(" + "|".join(re.escape(v) for v in values) + ")" if values else "[^']+"

    classes = alt([module.BENCHMARKS[m] for m in metrics or module.BENCHMARKS])
    track = "(" + "|".join(tracks) + ")" if tracks else r"\w+"
    params = ", ".join(f"'{alt(chosen.get(name))}'" for name in module.PARAMS)
    return rf"^{workload}\.{classes}\.track_{track}\({params}\)$"


def quick_selections(workload: str) -> list[Selection]:
    """The quick set: the workload's QUICK case for its quick metric families (narrowed to
    QUICK_TRACKS where a workload declares them), and, where it names one, one compile
    variant's cold compile and recompiles."""
    module = workloads.get(workload)
    selections: list[Selection] = [
        (workload, module.QUICK, workloads.quick_metrics(module),
         getattr(module, "QUICK_TRACKS", None))]
    compile_variant = getattr(module, "QUICK_COMPILE_VARIANT", None)
    if compile_variant and "compile" in module.BENCHMARKS:
        selections.append((workload, {**module.QUICK, "variant": [compile_variant]},
                           ["compile"], QUICK_COMPILE_METRICS))
    return selections


def narrow_quick(selections: list[Selection], chosen: dict[str, list[str]],
                 metrics: Sequence[str] | None, tracks: Sequence[str] | None
                 ) -> list[Selection]:
    """The quick set narrowed by --param, --metric and --track: each chosen value must be in
    the quick case (else one message: drop --quick to reach it), and what is left selects
    at least one benchmark."""
    offered: dict[tuple[str, str], list[str]] = {}
    for workload, quick, _, _ in selections:
        for name, values in quick.items():
            seen = offered.setdefault((workload, name), [])
            seen += [v for v in values if v not in seen]
    for (workload, name), allowed in offered.items():
        extra = [v for v in chosen.get(name, []) if v not in allowed]
        if extra:
            raise KernelwatchError(
                f"--quick runs {workload} at {name}={','.join(allowed)}; {name}="
                f"{','.join(extra)} is outside it: drop --quick to select any value "
                f"(`kernelwatch list {workload}`)")
    out: list[Selection] = []
    for workload, quick, families, quick_tracks in selections:
        params = {name: [v for v in values if v in chosen[name]] if chosen.get(name)
                  else values for name, values in quick.items()}
        if not all(params.values()):
            continue  # this part of the quick set has none of the chosen values
        if metrics:
            families = [f for f in families or [] if f in metrics]
        if tracks:
            quick_tracks = [t for t in quick_tracks or tracks if t in tracks]
        if families and quick_tracks != []:
            out.append((workload, params, families, quick_tracks))
    asked = {f for f in metrics or ()} | {t for t in tracks or ()}
    if asked and not out:
        families_offered = sorted({f for _, _, fs, _ in selections for f in fs or ()})
        raise KernelwatchError(
            f"--quick measures the metric families {', '.join(families_offered)}; "
            f"{', '.join(sorted(asked))} selects none of them: drop --quick to measure it")
    return out


def parse_params(workload: str, pairs: Sequence[str], aliases: dict[str, list[str] | None]
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """`--param NAME=VALUE` (repeatable) and the alias flags, as (asv parameter choices,
    environment variables for the workload's SETTINGS)."""
    module = workloads.get(workload)
    settings = getattr(module, "SETTINGS", {})
    chosen: dict[str, list[str]] = {k: list(v) for k, v in aliases.items() if v}
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise KernelwatchError(f"--param takes NAME=VALUE, not {pair!r} "
                                   f"(e.g. --param variant=eager); `kernelwatch list "
                                   f"{workload}` shows the names")
        if name in settings:
            env[settings[name]] = value
        elif name in module.PARAMS:
            renamed = (getattr(module, "RENAMED", None) or {}).get(name, {})
            if value in renamed and value not in module.PARAMS[name]:
                raise KernelwatchError(
                    f"{workload}'s {name} {value!r} is now called {renamed[value]!r} (results "
                    f"recorded under the old name read under the new one): --param "
                    f"{name}={renamed[value]}")
            chosen.setdefault(name, []).append(value)
        else:
            raise KernelwatchError(
                f"workload {workload} has no {name} parameter; its parameters: "
                f"{', '.join([*module.PARAMS, *settings])}")
    if env and hasattr(module, "validate_settings"):
        module.validate_settings(env, chosen)
    return chosen, env


def chunks(selections: Sequence[Selection], existing: bool) -> list[list[str]]:
    """The regexes of each asv call, environment facts last. An `existing` environment is
    one commit, and asv saves a (commit, environment) result file only when all its
    benchmarks have run: a run cut short (a GPU lease, a time limit) would lose everything,
    so there each metric family is a call of its own, saved as it ends (asv merges each
    call into the same file)."""
    if existing:
        out = [[selection_regex(w, chosen, [family], tracks)]
               for w, chosen, families, tracks in selections
               for family in families or list(workloads.get(w).BENCHMARKS)]
        return [*out, [ENVIRONMENT_REGEX]]
    return [[selection_regex(*sel) for sel in selections] + [ENVIRONMENT_REGEX]]


# ----------------------------------------------------------------------------- recorded


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
