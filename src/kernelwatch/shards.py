"""`kernelwatch run --shard K/N`: a deterministic K-th of the selection, so N runners of one
GPU kind split one commit (or one bisect step's processes) between them.

The unit is one benchmark class at one parameter combination (every track of it: they share
a process's setup). Units are ranked by a hash of their names and dealt round-robin: the
shards of one selection are disjoint, cover it, differ in size by one at most, and split the
same way on every runner. The machine's own facts (environment.*) go to
every shard: each runner's results need them.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError


def parse(spec: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise KernelwatchError(f"--shard takes K/N with 1 <= K <= N (e.g. 2/4: the second of "
                               f"four shards), not {spec!r}")
    return int(m.group(1)), int(m.group(2))


def _rank_key(unit: str) -> str:
    return hashlib.sha1(unit.encode()).hexdigest()


def pick(all_units: Sequence[str], k: int, n: int) -> list[str]:
    """Shard K of N: the units ranked by a hash of their names, dealt round-robin, so the
    shards differ in size by one at most and the same selection splits the same way on every
    machine."""
    ranked = sorted(set(all_units), key=_rank_key)
    return sorted(u for i, u in enumerate(ranked) if i % n == k - 1)


def units(workload: str, chosen: dict[str, list[str] | None],
          metrics: Sequence[str] | None) -> list[str]:
    """`workload.Class(values, ...)` of every class and parameter combination selected (the
    choices as the workload's PARAMS order them; a parameter not chosen is every value)."""
    module = workloads.get(workload)
    classes = [module.BENCHMARKS[m] for m in metrics or module.BENCHMARKS]
    values = [chosen.get(p) or module.PARAMS[p] for p in module.PARAMS]
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


def narrow(chunk: list[str], selections: Sequence[tuple], k: int, n: int) -> list[str]:
    """A chunk of asv regexes narrowed to shard K of N of the selections' units: each regex
    gets a lookahead admitting only the shard's units; a regex none of whose classes has a
    unit in the shard is dropped; the environment's regex is kept. Bad input when the shard
    has no unit at all (fewer units than shards)."""
    everything = sorted({u for w, chosen, metrics, _ in selections
                         for u in units(w, chosen, metrics)})
    mine = pick(everything, k, n)
    if not mine:
        raise KernelwatchError(f"shard {k}/{n} of this selection is empty ({len(everything)} "
                               "class x parameter combinations in all); use fewer shards")
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
