"""`kernelwatch compare BASE HEAD`: every series measured at both commits, as markdown for a
pull-request comment or a CI step summary, significant changes first. The marks are
`asv compare`'s: `+` worse, `-` better, `!` newly failing, `*` no longer failing, `x` not
comparable (the benchmark's `version` changed between the two), blank otherwise. The kernels
one call launches are a change whenever their count differs, however little the time moved
(more kernels `+`: a fusion was lost). A faster variant whose output fails its workload's
quality gate at HEAD is not counted as better.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwatch import detect
from kernelwatch.report import clocks
from kernelwatch.report.format import fmt_value, md_code, md_text
from kernelwatch.results import Row

# asv compare's marks for detect.judge's flags: x for a benchmark whose code changed.
MARKS = {"worse": "+", "better": "-", "": " ", detect.NOT_COMPARABLE: "x"}
WORSE_MARKS = ("+", "!")


@dataclass
class Comparison:
    env: str
    benchmark: str
    params: str
    unit: str
    before: float | None
    after: float | None
    change: detect.Change | None
    mark: str
    series: str  # detect.series_key: what per-series thresholds are keyed by
    # What the case's device check found at either commit (throttled, shared, ...): a
    # change measured so may be the GPU's, not the code's.
    conditions: str = ""
    param_names: tuple[str, ...] = ()

    @property
    def ratio(self) -> float | None:
        return self.change.ratio if self.change else None


def _series(rows: list[Row], machine: str, commit: str) -> dict[tuple, Row]:
    return {(r.env_name, r.benchmark, tuple(r.params.items())): r for r in rows
            if r.machine == machine and r.commit == commit
            and (r.value is not None or r.failed)}



def compare(rows: list[Row], base: tuple[str, str], head: tuple[str, str], *,
            factor: float = detect.DEFAULT_FACTOR,
            thresholds: dict[str, float] | None = None,
            gate=None) -> list[Comparison]:
    """Series recorded at `base` and `head`, each a (machine, full commit hash). A series
    with a threshold in `thresholds` (series key -> factor, from `kernelwatch fidelity` on
    the head's machine) is judged at it; the others at `factor`."""
    before, after = _series(rows, *base), _series(rows, *head)
    checks = clocks.flagged_checks(rows)
    failing = _failing_gates(after.values(), gate)
    out = []
    for key in sorted(before.keys() & after.keys()):
        b, a = before[key], after[key]
        env, bench, params = key
        key_of_series = detect.series_key(bench, [v for _, v in params])
        change = None
        if a.version and b.version and a.version != b.version:
            mark = MARKS[detect.NOT_COMPARABLE]
        elif a.failed and not b.failed:
            mark = "!"
        elif b.failed and not a.failed:
            mark = "*"
        elif a.median is None or b.median is None:
            mark = " "
        else:
            change = detect.judge(bench, a.unit, b.samples or [b.median],
                                  a.samples or [a.median],
                                  factor=(thresholds or {}).get(key_of_series, factor))
            mark = MARKS[change.flag]
        notes = [f"{side}: {note}" for side, (machine, commit) in (("base", base), ("head", head))
                 if (note := clocks.note_for(checks, machine, env, commit, bench, params))]
        conditions = f"device check, {'; '.join(notes)}" if notes else ""
        reason = failing.get((env, bench.split(".")[0], params))
        if mark == "-" and reason:
            mark = " "  # a speedup counts only when the output passes its quality gate
            conditions = "; ".join(filter(None, [conditions, "faster, not counted: fails its "
                                                 f"quality gate ({reason})"]))
        out.append(Comparison(env, bench, ", ".join(v for _, v in params), a.unit,
                              b.median, a.median, change, mark, key_of_series,
                              conditions, tuple(k for k, _ in params)))
    order = {"+": 0, "!": 1, "-": 2, "*": 3, "x": 4, " ": 5}
    out.sort(key=lambda c: (order[c.mark], c.benchmark.startswith(detect.MACHINE_FACTS),
                            -abs((c.ratio or 1) - 1)))
    return out


def _failing_gates(rows, gate) -> dict[tuple, str]:
    """{(env, workload, params items): reason} for each case whose quality result fails its
    workload's gate."""
    out = {}
    for r in rows:
        reason = gate(r.benchmark, r.params, r.value) if gate and r.value is not None else None
        if reason:
            out[(r.env_name, r.workload, tuple(r.params.items()))] = reason
    return out


def timed_changes(comparisons: list[Comparison]) -> set[tuple]:
    """(env, workload, params items) of the cases whose time or kernel count changed."""
    return {(c.env, c.benchmark.split(".")[0], tuple(zip(c.param_names, c.params.split(", "),
                                                          strict=False)))
            for c in comparisons if c.mark in ("+", "-")
            and (c.unit == "seconds" or c.benchmark.endswith(detect.KERNEL_COUNT))}


def _value(v: float | None, unit: str) -> str:
    if v is None:
        return "failed"
    return fmt_value(v, unit)


# Rows of the table at most: a comment holds 65536 characters. The flagged rows come first.
ROW_LIMIT = 200


def markdown(comparisons: list[Comparison], base: tuple[str, str], head: tuple[str, str],
             factor: float, thresholds: dict[str, float] | None = None, *,
             row_limit: int = ROW_LIMIT) -> str:
    """The comparison as markdown for a pull-request comment: counts, then one row per
    series (the first `row_limit`, flagged ones first), every name a code span.
    `thresholds` (series key -> factor) are the series' own from `kernelwatch fidelity`."""
    worse = sum(c.mark in WORSE_MARKS for c in comparisons)
    own = sum(c.series in (thresholds or {}) for c in comparisons)
    better = sum(c.mark in ("-", "*") for c in comparisons)
    incomparable = sum(c.mark == "x" for c in comparisons)
    lines = [f"### kernelwatch: {head[1][:8]} ({md_code(head[0])}) against {base[1][:8]} "
             f"({md_code(base[0])})",
             "",
             f"{worse} worse, {better} better, {incomparable} not comparable, "
             f"{len(comparisons) - worse - better - incomparable} unchanged of "
             f"{len(comparisons)} series (a change counts when asv's test on the samples "
             f"finds it significant and the medians differ by more than {factor:.2f}x"
             + (f", or by the series' own threshold from `kernelwatch fidelity` where "
                f"measured ({own} series, column `threshold`)" if own else "") + "; `+` "
             "worse, `-` better, `!` newly failing, `*` fixed, `x` not comparable: the "
             "benchmark's version changed).",
             "",
             "| | before | after | ratio | threshold | benchmark (parameters) | environment |",
             "|---|---|---|---|---|---|---|"]
    for c in comparisons[:row_limit]:
        ratio = f"{c.ratio:.2f}" if c.ratio is not None and c.mark != "x" else "n/a"
        threshold = (thresholds or {}).get(c.series, factor)
        lines.append(f"| {c.mark.strip()} | {_value(c.before, c.unit)} | "
                     f"{_value(c.after, c.unit)} | {ratio} | {threshold:.2f} | "
                     f"{md_code(c.benchmark, table=True)} "
                     f"({md_code(c.params, table=True)})"
                     + (f" ({md_text(c.conditions)})" if c.conditions else "")
                     + f" | {md_code(c.env, table=True)} |")
    if len(comparisons) > row_limit:
        rest = comparisons[row_limit:]
        flagged = sum(c.mark.strip() != "" for c in rest)
        lines += ["", f"{len(rest)} more series not shown ({flagged} of them marked, "
                  f"{len(rest) - flagged} unchanged); the counts above include them."]
    return "\n".join(lines)
