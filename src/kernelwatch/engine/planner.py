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
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from asv import results as asv_results

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError, check_choices, unknown_name
from kernelwatch.results import outcomes
from kernelwatch.results.files import pooled_processes
from kernelwatch.results.rows import UNREADABLE, unreadable


class Selection(NamedTuple):
    """What one regex selects: a workload's chosen parameter values, metric families (None:
    all), track names (None: all), and the processes each combination is measured in."""

    workload: str
    params: dict
    metrics: list[str] | None
    tracks: Sequence[str] | None
    processes: int = 1


ENVIRONMENT_REGEX = r"^environment\.Environment\.track_\w+$"


def check_metrics(workload: str, metrics: Sequence[str] | None) -> None:
    families = workloads.get(workload).metrics
    for m in metrics or ():
        if m not in families:
            raise unknown_name("metric", m, families, where=workload)


# A track method as benchmarks/ define them: every one is a plain `def` in a class body.
TRACK_DEF = re.compile(r"^\s+def track_(\w+)\(", re.MULTILINE)


def check_tracks(benchmark_dir: Path, tracks: Sequence[str] | None) -> None:
    """One message for a --track name no benchmark defines (a typo would select nothing and
    the run would measure only the machine's facts), listing the names they define."""
    known = sorted({name for f in benchmark_dir.glob("*.py")
                    for name in TRACK_DEF.findall(f.read_text())})
    for track in tracks or ():
        if track not in known:
            raise unknown_name("track", track, known)


def selection_regex(workload: str, chosen: dict[str, list[str] | None],
                    metrics: list[str] | None, tracks: Sequence[str] | None = None) -> str:
    """An asv `-b` regex: asv matches it against `name(param0, param1, ...)`, the params in
    the workload's PARAMS order. `tracks` narrows the classes' track_ methods by name."""
    spec = workloads.get(workload)
    for name, values in chosen.items():
        if values and name not in spec.params:
            raise KernelwatchError(f"workload {workload} has no {name} parameter; its "
                                   f"parameters: {', '.join(spec.params)}")
    check_choices(spec.params, chosen, where=workload)
    check_metrics(workload, metrics)

    def alt(values):
        return "(" + "|".join(re.escape(v) for v in values) + ")" if values else "[^']+"

    classes = alt([spec.metrics[m] for m in metrics or spec.metrics])
    track = "(" + "|".join(tracks) + ")" if tracks else r"\w+"
    params = ", ".join(f"'{alt(chosen.get(name))}'" for name in spec.params)
    return rf"^{workload}\.{classes}\.track_{track}\({params}\)$"


def quick_selections(workload: str) -> list[Selection]:
    """The quick set: the workload's part of the quick suite."""
    return suite_selections(workloads.QUICK_SUITE, workload)


def suite_selections(suite: str, workload: str | None = None) -> list[Selection]:
    """A named suite's selections (workloads.SUITE_NAMES): each workload's share of it (the
    quick suite: its QUICK declarations), or only `workload`'s."""
    if suite not in workloads.SUITE_NAMES:
        raise unknown_name("suite", suite, workloads.SUITE_NAMES)
    out: list[Selection] = []
    for name in [workload] if workload else list(workloads.WORKLOADS):
        spec = workloads.get(name)
        for part in spec.suites.get(suite, []):
            check_choices(spec.params, part.params, where=name)
            check_metrics(name, part.metrics)
            out.append(Selection(name, {k: list(v) for k, v in part.params.items()},
                                 list(part.metrics), part.tracks, part.processes))
    if not out:
        raise KernelwatchError(f"workload {workload} declares no part of the {suite} suite; "
                               "`kernelwatch list --suites` shows what each suite holds")
    return out


def narrow_quick(selections: list[Selection], chosen: dict[str, list[str]],
                 metrics: Sequence[str] | None, tracks: Sequence[str] | None,
                 flag: str = "--quick", fix: str | None = None) -> list[Selection]:
    """A suite (the quick set by default) narrowed by --param, --metric and --track: each
    chosen value must be in the suite (else one message: drop `flag` to reach it), and
    what is left selects at least one benchmark (else one message: `fix`, by default drop
    `flag`)."""
    offered: dict[tuple[str, str], list[str]] = {}
    for workload, part, *_ in selections:
        for name, values in part.items():
            seen = offered.setdefault((workload, name), [])
            seen += [v for v in values if v not in seen]
    for (workload, name), allowed in offered.items():
        extra = [v for v in chosen.get(name, []) if v not in allowed]
        if extra:
            raise KernelwatchError(
                f"{flag} runs {workload} at {name}={','.join(allowed)}; {name}="
                f"{','.join(extra)} is outside it: drop {flag} to select any value "
                f"(`kernelwatch list {workload}`)")
    out: list[Selection] = []
    for workload, part, families, quick_tracks, processes in selections:
        params = dict(part)
        for name, values in chosen.items():
            if values:
                params[name] = [v for v in part.get(name, values) if v in values]
        if not all(params.values()):
            continue  # this part of the suite has none of the chosen values
        if metrics:
            families = [f for f in families or [] if f in metrics]
        if tracks:
            quick_tracks = [t for t in quick_tracks or tracks if t in tracks]
        if families and quick_tracks != []:
            out.append(Selection(workload, params, families, quick_tracks, processes))
    asked = {f for f in metrics or ()} | {t for t in tracks or ()}
    if asked and not out:
        families_offered = sorted({f for s in selections for f in s.metrics or ()})
        raise KernelwatchError(
            f"{flag} measures the metric families {', '.join(families_offered)}; "
            f"{', '.join(sorted(asked))} selects none of them: "
            f"{fix or f'drop {flag} to measure it'}")
    return out


def parse_params(workload: str, pairs: Sequence[str], aliases: dict[str, list[str] | None]
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """`--param NAME=VALUE` (repeatable) and the alias flags, as (asv parameter choices,
    environment variables for the workload's SETTINGS)."""
    spec = workloads.get(workload)
    settings = spec.settings
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
        elif name in spec.params:
            renamed = spec.renamed.get(name, {})
            if value in renamed and value not in spec.params[name]:
                raise KernelwatchError(
                    f"{workload}'s {name} {value!r} is now called {renamed[value]!r} (results "
                    f"recorded under the old name read under the new one): --param "
                    f"{name}={renamed[value]}")
            chosen.setdefault(name, []).append(value)
        else:
            raise KernelwatchError(
                f"workload {workload} has no {name} parameter; its parameters: "
                f"{', '.join([*spec.params, *settings])}")
    if env and spec.validate_settings is not None:
        spec.validate_settings(env, chosen)
    return chosen, env


def chunks(selections: Sequence[Selection], existing: bool) -> list[list[str]]:
    """The regexes of each asv call, environment facts last: one call, whose benchmark loop
    (kernelwatch.engine.benchloop) saves each parameter combination as it ends, so a run cut short
    (a GPU lease, a time limit) keeps every combination that finished."""
    return [[selection_regex(*sel[:4]) for sel in selections] + [ENVIRONMENT_REGEX]]


def processes_by_regex(selections: Sequence[Selection], processes: int = 1) -> dict[str, int]:
    """{a selection's regex, less its leading ^: its processes} for those measured in more
    than one (`processes`, the run's --processes, for every one where that is more). A
    planned call's regex ends with it (planner.excluding and shards.narrow only put a
    lookahead in front); the benchmark loop matches it against combination names."""
    found: dict[str, int] = {}
    for s in selections:
        body, k = selection_regex(*s[:4])[1:], max(s.processes, processes)
        if k > 1:
            found[body] = max(k, found.get(body, 1))
    return found


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
                   benchmarks: dict, pooled: dict[str, int] | None = None) -> set[str]:
    """Combinations with a measured value (not failed, not unrun) stored for this commit and
    environment, at the benchmark's current version (asv measures a changed benchmark
    again), and those that ran and were skipped (their outcome says so: the code under test
    cannot run there, and running it again says the same; --rerun tries). `pooled`, where
    given, gets {name: processes} of each measured combination whose file counts the
    processes its samples pool (kernelwatch.results.files.PROCESSES_KEY), less those
    whose last process failed (it kept its samples; started again it would say the same)."""
    path = results_dir / asv_results.get_filename(machine, commit, env_name)
    if not path.is_file():
        return set()
    ended = outcomes.read(outcomes.path_of(results_dir, machine, commit, env_name))
    skipped = {name for name, entry in ended.items() if entry.get("status") == "skipped"}
    try:
        res = asv_results.Results.load(str(path))
    except UNREADABLE as exc:
        raise unreadable([f"{path} ({exc})"]) from exc
    done = set()
    for key in res.get_result_keys(benchmarks):
        params = benchmarks[key].get("params") or []
        values = res.get_result_value(key, params)
        if not params:
            if _is_value(values) or (key in skipped and values is not None):
                done.add(key)
            continue
        for combo, v in zip(itertools.product(*params), values, strict=True):
            name = f"{key}({', '.join(combo)})"
            if _is_value(v) or (name in skipped and v is not None):
                done.add(name)
    if pooled is not None:
        for name in done:
            count = pooled_processes(res._duration, name)
            if count and ended.get(name, {}).get("status") != "failed":
                pooled[name] = count
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
    discovery; a benchmark added since is not counted, and asv measures it); `pooled`, the
    recorded processes of each combination it measures in the rest of its processes only
    (a run cut among a series' processes)."""

    commits: list[str]
    envs: list[str]
    regexes: list[str]
    kept: int = 0
    pooled: dict[str, int] = field(default_factory=dict)


def processes_of(name: str, processes: dict[str, int] | None) -> int:
    """The processes a combination is measured in: the most any regex body in `processes`
    ({body: K}, processes_by_regex) that matches its name asks, else 1."""
    return max((k for body, k in (processes or {}).items() if re.match(body, name)), default=1)


def plan(results_dir: Path, machine: str, commits: Sequence[str], envs: Sequence[str],
         chunks: Sequence[Sequence[str]], processes: dict[str, int] | None = None
         ) -> list[Call]:
    """The asv calls that measure what each chunk of regexes selects and is not yet recorded,
    for every commit x environment, chunk after chunk. A call whose regexes select nothing at
    all makes asv say "No benchmarks selected": everything there is recorded. A combination
    recorded in fewer processes than `processes` ({regex body: K}) asks is left in, for the
    benchmark loop's --top-up to measure the rest."""
    # asv rewrites benchmarks.json at discovery; where it is missing nothing is known to be
    # recorded.
    benchmarks = read_benchmarks(results_dir)
    pooled: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    recorded = {(env, commit): recorded_names(results_dir, machine, commit, env, benchmarks,
                                              pooled[(env, commit)])
                for env in envs for commit in commits} if benchmarks else {}
    calls = []
    for regexes in chunks:
        selected = selectable_names(benchmarks, regexes)
        groups: dict[tuple, list[str]] = defaultdict(list)
        for env in envs:
            for commit in commits:
                done = recorded.get((env, commit), set()) & selected
                short = {n: k for n, k in pooled[(env, commit)].items()
                         if n in done and k < processes_of(n, processes)}
                groups[(env, frozenset(done - short.keys()),
                        frozenset(short.items()))].append(commit)
        merged: dict[tuple, list[str]] = defaultdict(list)
        for (env, done, short), group_commits in groups.items():
            merged[(done, short, tuple(group_commits))].append(env)
        calls += [Call(list(group_commits), group_envs,
                       [excluding(rx, done) for rx in regexes], len(done), dict(short))
                  for (done, short, group_commits), group_envs in merged.items()]
    return calls


# ----------------------------------------------------------------------------- durations

# kernelwatch.engine.benchloop keeps each combination's seconds in its result file's `durations`
# under this key (asv keeps keys in angle brackets there), and the seconds a process had run
# when a run was stopped under the second (benchloop.STOPPED_KEY). A process that failed has
# its seconds under the first, and its outcome in the file's outcomes (results.outcomes).
DURATION_PREFIX, DURATION_SUFFIX = "<kernelwatch ", ">"
STOPPED_PREFIX = "<kernelwatch-stopped "


class Durations(dict):
    """Seconds per combination name; those in `floors` are the least it takes (a process
    stopped before it ended, or one asv stopped at the benchmark's timeout), not a whole
    run's."""

    def __init__(self, *args, floors: set[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.floors: set[str] = set(floors or ())


def read_benchmarks(results_dir: Path) -> dict:
    """asv's benchmarks.json of `results_dir` ({} where there is none yet, or it is being
    rewritten)."""
    path = results_dir / "benchmarks.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, OSError):
        return {}


def combinations(benchmarks: dict, call: Call,
                 processes: dict[str, int] | None = None) -> Counter[str]:
    """The combination names one asv call runs, each counted once per commit and
    environment and process (`processes`: {regex body: processes} for those measured in
    more than one); empty where benchmarks.json is not known."""
    counts: Counter[str] = Counter()
    for rx in call.regexes:
        k = max((n for body, n in (processes or {}).items() if rx.endswith(body)), default=1)
        for name in selectable_names(benchmarks, [rx]):
            left = max(k - call.pooled.get(name, 0), 0)
            counts[name] = max(counts[name], left * len(call.commits) * len(call.envs))
    return +counts


def combination_durations(results_dir: Path, machine: str) -> Durations:
    """Seconds each combination took, as the newest result file of `machine` that measured
    it to the end records (any commit or environment); unreadable files are passed over.
    Where a process of it was stopped before it ended or timed out, in a newer commit's file
    than any whole duration, the seconds it had run stand in when they are more, named in
    `floors`. A process that failed otherwise says nothing of a run's length (a server that
    initialised CUDA fails every process at once): its seconds are not counted."""
    whole: dict[str, tuple[int, float]] = {}  # name -> (date, seconds), newest
    floors: dict[str, tuple[int, float]] = {}
    folder = results_dir / machine
    if not folder.is_dir():
        return Durations()
    for path in folder.glob("*.json"):
        if path.name == "machine.json":
            continue
        try:
            data = json.loads(path.read_text())
            durations, date = data.get("durations") or {}, int(data.get("date") or 0)
        except (ValueError, OSError, TypeError, AttributeError):
            continue
        failed = {name: str(entry.get("reason", "")) for name, entry
                  in outcomes.read(path.with_suffix(outcomes.SUFFIX)).items()
                  if isinstance(entry, dict) and entry.get("status") == "failed"}
        for key, seconds in durations.items():
            if not (isinstance(key, str) and key.endswith(DURATION_SUFFIX)
                    and isinstance(seconds, int | float)):
                continue
            if key.startswith(STOPPED_PREFIX):
                found, name = floors, key[len(STOPPED_PREFIX):-len(DURATION_SUFFIX)]
            elif key.startswith(DURATION_PREFIX):
                name = key[len(DURATION_PREFIX):-len(DURATION_SUFFIX)]
                if name not in failed:
                    found = whole
                elif outcomes.TIMED_OUT.search(failed[name]):
                    found = floors
                else:
                    continue
            else:
                continue
            if name not in found or found[name][0] <= date:
                found[name] = (date, float(seconds))
    out = Durations({name: seconds for name, (_, seconds) in whole.items()})
    for name, (date, seconds) in floors.items():
        if name not in whole or (whole[name][0] < date and whole[name][1] < seconds):
            out[name] = seconds
            out.floors.add(name)
    return out


@dataclass
class Estimate:
    """What a set of asv calls will cost: benchmark processes, and seconds from the
    durations recorded on the machine (`unknown` processes have no record; `floors`
    processes count the seconds a stopped or timed-out process of theirs had run, the least
    they take)."""

    processes: int
    seconds: float
    # The benchmarks (parameters left out) of the processes with no record, with their counts.
    unrecorded: Counter[str] = field(default_factory=Counter)
    # Combinations counted at a stopped or timed-out process's seconds: name -> (processes,
    # seconds).
    floors: dict[str, tuple[int, float]] = field(default_factory=dict)
    # Per workload (a name's first part): processes, and seconds of those with a record.
    workloads: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def unknown(self) -> int:
        return sum(self.unrecorded.values())

    def describe(self) -> str:
        if not self.processes:
            return "no benchmark process (asv's discovery and environment facts only)"
        known = self.processes - self.unknown
        count = f"{self.processes} benchmark process{'es' * (self.processes != 1)}"
        if not known:
            return (f"{count}; no duration recorded for them on this machine yet (a first run "
                    "records each)")
        clock = _minutes(self.seconds)
        at_floor = sum(n for n, _ in self.floors.values())
        # A stopped or timed-out process's seconds are a floor: the total may be more.
        about = f"about {clock}{' or more' * bool(at_floor)}"
        floors = (f" ({at_floor} counted at the seconds a stopped or timed-out process had run)"
                  if at_floor else "")
        if not self.unknown:
            return f"{count}, {about} from recorded durations{floors}"
        return (f"{count}, {about} for the {known} with a recorded duration{floors}; "
                f"{self.unknown} have none on this machine (not counted)")

    def workloads_line(self) -> str | None:
        """Where the estimate's seconds go, the costliest workload first (what to narrow
        when a suite is over its budget); None for fewer than two workloads or no record."""
        if len(self.workloads) < 2 or self.unknown == self.processes:
            return None
        parts = [f"{name} {_minutes(seconds)} ({n})" for name, (n, seconds) in
                 sorted(self.workloads.items(), key=lambda item: -item[1][1])]
        return f"by workload (seconds, processes): {', '.join(parts)}"

    def floors_line(self, limit: int = 4) -> str | None:
        """The combinations counted at a stopped or timed-out process's seconds, longest
        first; None when there are none."""
        if not self.floors:
            return None
        longest = sorted(self.floors.items(), key=lambda item: -item[1][1])
        named = [f"{name} ({seconds:.0f} s)" for name, (_, seconds) in longest[:limit]]
        more = len(longest) - len(named)
        return ("counted at the seconds a process had run when a run was stopped before it "
                f"ended or timed out: {', '.join(named)}"
                + (f" and {more} more" if more else "")
                + "; a run that measures one to the end records its whole duration")

    def unrecorded_line(self, limit: int = 6) -> str | None:
        """Which benchmarks the estimate leaves out, most processes first; None when it
        counts them all (or none has a record: describe() says so)."""
        if not self.unrecorded or self.unknown == self.processes:
            return None
        named = [f"{name} ({n})" for name, n in self.unrecorded.most_common(limit)]
        more = len(self.unrecorded) - len(named)
        return (f"no duration on record on this machine for {', '.join(named)}"
                + (f" and {more} more benchmark{'s' * (more != 1)}" if more else "")
                + " (a first run records each)")


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def elsewhere_line(results_dir: Path, machine: str, planned: Counter[str],
                   unknown: int) -> str | None:
    """Where `machine` has no record of `unknown` of the planned processes (its estimate's),
    what another machine's records say, the one that covers the most of them: the scale of
    a first run on a new runner, at that machine's speed. None where no other machine covers
    more."""
    best: tuple[str, Estimate] | None = None
    folders = sorted(results_dir.iterdir()) if results_dir.is_dir() else []
    for folder in folders:
        if folder.name == machine or not (folder / "machine.json").is_file():
            continue
        other = estimate(planned, combination_durations(results_dir, folder.name))
        if other.unknown < (best[1].unknown if best else unknown):
            best = (folder.name, other)
    if best is None:
        return None
    name, other = best
    known = other.processes - other.unknown
    return (f"recorded on {name}, another machine (its speed, not this one's): about "
            f"{_minutes(other.seconds)} for the {known} of the {other.processes} it has a "
            "duration for")


def estimate(planned: Counter[str], durations: dict[str, float]) -> Estimate:
    seconds, unrecorded, at_floor = 0.0, Counter[str](), {}
    workloads: dict[str, tuple[int, float]] = {}
    floors = getattr(durations, "floors", set())
    for name, count in planned.items():
        cost = durations[name] * count if name in durations else 0.0
        seconds += cost
        if name not in durations:
            unrecorded[name.partition("(")[0]] += count
        elif name in floors:
            at_floor[name] = (count, durations[name])
        workload = name.partition(".")[0]
        n, spent = workloads.get(workload, (0, 0.0))
        workloads[workload] = (n + count, spent + cost)
    return Estimate(processes=sum(planned.values()), seconds=seconds, unrecorded=unrecorded,
                    floors=at_floor, workloads=workloads)
