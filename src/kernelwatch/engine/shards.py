"""`kernelwatch run --shard K/N`: a deterministic K-th of the selection, so N runners of one
GPU kind split one commit (or one bisect step's processes) between them.

The unit is one benchmark class at one parameter combination (every track of it: they share
a process's setup). Where the machine has recorded how long the units took (the benchmark
loop, benchloop.py, keeps each combination's seconds in its result file, and runners share
the results branch), the units are dealt by duration: the longest first, each to the shard with the
least so far, so N runners finish together; a unit with no record counts as the mean of
those with one. Without records, they are ranked by a hash of their names and dealt
round-robin. Either way the shards of one selection are disjoint, cover it, and split the
same way on every runner that holds the same records. The machine's own facts
(environment.*) go to every shard: each runner's results need them.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError, NothingToRun


def parse(spec: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise KernelwatchError(f"--shard takes K/N with 1 <= K <= N (e.g. 2/4: the second of "
                               f"four shards), not {spec!r}")
    return int(m.group(1)), int(m.group(2))


def _rank_key(unit: str) -> str:
    return hashlib.sha1(unit.encode()).hexdigest()


def pick(all_units: Sequence[str], k: int, n: int,
         seconds: dict[str, float] | None = None) -> list[str]:
    """Shard K of N. Without `seconds` (recorded seconds per unit): the units ranked by a
    hash of their names, dealt round-robin, so the shards differ in size by one at most.
    With it: longest first, each to the least loaded shard (ties to the lowest), a unit with
    no record at the mean of the recorded ones. The same selection and records split the
    same way on every machine."""
    ranked = sorted(set(all_units), key=_rank_key)
    known = {u: seconds[u] for u in ranked if seconds and u in seconds}
    if not known:
        return sorted(u for i, u in enumerate(ranked) if i % n == k - 1)
    mean = sum(known.values()) / len(known)
    # A unit recorded at 0 s still counts, so no shard takes a second unit before each has one.
    cost = {u: max(known.get(u, mean), 1e-3) for u in ranked}
    load = [0.0] * n
    mine = []
    for u in sorted(ranked, key=lambda u: -cost[u]):  # stable: hash order among equals
        shard = min(range(n), key=lambda i: (load[i], i))
        load[shard] += cost[u]
        if shard == k - 1:
            mine.append(u)
    return sorted(mine)


def unit_of(combination: str) -> str:
    """The unit (`workload.Class(v1, v2)`) a combination name (`workload.Class.track_x('v1',
    'v2')`) belongs to, as units() names them."""
    head, _, rest = combination.partition("(")
    values = [v.strip("'") for v in rest[:-1].split(", ")] if rest[:-1] else []
    return f"{head.rsplit('.', 1)[0]}({', '.join(values)})"


def unit_seconds(combinations: dict[str, float]) -> dict[str, float]:
    """Recorded seconds per unit: the sum of its combinations' (planner.
    combination_durations)."""
    out: dict[str, float] = {}
    for name, seconds in combinations.items():
        unit = unit_of(name)
        out[unit] = out.get(unit, 0.0) + seconds
    return out


def units(workload: str, chosen: dict[str, list[str] | None],
          metrics: Sequence[str] | None) -> list[str]:
    """`workload.Class(values, ...)` of every class and parameter combination selected (the
    choices as the workload's PARAMS order them; a parameter not chosen is every value)."""
    spec = workloads.get(workload)
    classes = [spec.metrics[m] for m in metrics or spec.metrics]
    values = [chosen.get(p) or spec.params[p] for p in spec.params]
    return [f"{workload}.{cls}({', '.join(combo)})"
            for cls in classes for combo in itertools.product(*values)]


def _unit_pattern(unit: str) -> str:
    """What asv's names of a unit's tracks look like (`name('v1', 'v2', ...)`), as a regex."""
    head, _, rest = unit.partition("(")
    values = rest[:-1].split(", ") if rest[:-1] else []
    params = ", ".join(f"'{re.escape(v)}'" for v in values)
    return rf"{re.escape(head)}\.track_\w+\({params}\)"


# selection_regex's shape: ^workload\.(Class|Class)\.track_...
_CLASSES = re.compile(r"^\^(\w+)\\\.\(([\w|]+)\)\\\.")


def narrow(chunk: list[str], selections: Sequence[tuple], k: int, n: int,
           seconds: dict[str, float] | None = None) -> list[str]:
    """A chunk of asv regexes narrowed to shard K of N of the selections' units (dealt by
    `seconds`, the recorded seconds per unit, where given): each regex gets a lookahead
    admitting only the shard's units; a regex none of whose classes has a unit in the shard
    is dropped; the environment's regex is kept. NothingToRun when the shard has no unit at
    all (fewer units than shards: a CI matrix wider than the selection)."""
    everything = sorted({u for w, chosen, metrics, *_ in selections
                         for u in units(w, chosen, metrics)})
    mine = pick(everything, k, n, seconds)
    if not mine:
        raise NothingToRun(
            f"shard {k}/{n} of this selection is empty: it has {len(everything)} class x "
            f"parameter combinations, dealt to shards 1-{len(everything)} of {n}; nothing to "
            f"run here, the other shards measure it all (give at most {len(everything)} "
            "shards to use every runner)")
    classes = {u.partition("(")[0] for u in mine}
    allowed = "(?=(?:" + "|".join(_unit_pattern(u) for u in mine) + ")$)"
    out = []
    for rx in chunk:
        m = _CLASSES.match(rx)
        if m is None:  # the environment's facts: every shard records them
            out.append(rx)
        elif any(f"{m.group(1)}.{c}" in classes for c in m.group(2).split("|")):
            out.append("^" + allowed + rx[1:])
    return out
