"""`kernelwatch compare BASE HEAD`: every series measured at both commits, as markdown for a
pull-request comment or a CI step summary, significant changes first. The marks are
`asv compare`'s: `+` worse, `-` better, `!` newly failing, `*` no longer failing, `x` not
comparable (the benchmark's `version` changed between the two), blank otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwatch import detect
from kernelwatch.report import clocks
from kernelwatch.report.format import fmt_value
from kernelwatch.results import Row

# Only detect.FLAGGED_UNITS series are flagged; never the machine's own facts
# (environment.*: copy bandwidth, threads), which describe the machine, not the code.
MACHINE_FACTS = "environment."
MARKS = {"worse": "+", "better": "-", "": " "}
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

    @property
    def ratio(self) -> float | None:
        return self.change.ratio if self.change else None


def _series(rows: list[Row], machine: str, commit: str) -> dict[tuple, Row]:
    return {(r.env_name, r.benchmark, tuple(r.params.items())): r for r in rows
            if r.machine == machine and r.commit == commit
            and (r.value is not None or r.failed)}


def compare(rows: list[Row], base: tuple[str, str], head: tuple[str, str], *,
            factor: float = detect.DEFAULT_FACTOR,
            thresholds: dict[str, float] | None = None) -> list[Comparison]:
    """Series recorded at `base` and `head`, each a (machine, full commit hash). A series
    with a threshold in `thresholds` (series key -> factor, from `kernelwatch fidelity` on
    the head's machine) is judged at it; the others at `factor`."""
    before, after = _series(rows, *base), _series(rows, *head)
    checks = clocks.flagged_checks(rows)
    out = []
    for key in sorted(before.keys() & after.keys()):
        b, a = before[key], after[key]
        env, bench, params = key
        key_of_series = detect.series_key(bench, [v for _, v in params])
        change = None
        if a.version and b.version and a.version != b.version:
            mark = "x"  # measured by different benchmark code: never compared
        elif a.failed and not b.failed:
            mark = "!"
        elif b.failed and not a.failed:
            mark = "*"
        elif a.median is None or b.median is None:
            mark = " "
        else:
            change = detect.compare(
                b.samples or [b.median], a.samples or [a.median],
                factor=(thresholds or {}).get(key_of_series, factor))
            flagged = a.unit in detect.FLAGGED_UNITS and not bench.startswith(MACHINE_FACTS)
            mark = MARKS[change.flag] if flagged else " "
        notes = [f"{side}: {note}" for side, (machine, commit) in (("base", base), ("head", head))
                 if (note := clocks.note_for(checks, machine, env, commit, bench, params))]
        out.append(Comparison(env, bench, ", ".join(v for _, v in params), a.unit,
                              b.median, a.median, change, mark, key_of_series,
                              "; ".join(notes)))
    order = {"+": 0, "!": 1, "-": 2, "*": 3, "x": 4, " ": 5}
    out.sort(key=lambda c: (order[c.mark], c.benchmark.startswith(MACHINE_FACTS),
                            -abs((c.ratio or 1) - 1)))
    return out


def _value(v: float | None, unit: str) -> str:
    if v is None:
        return "failed"
    return fmt_value(v, unit)


def markdown(comparisons: list[Comparison], base: tuple[str, str], head: tuple[str, str],
             factor: float, thresholds: dict[str, float] | None = None) -> str:
    worse = sum(c.mark in WORSE_MARKS for c in comparisons)
    own = sum(c.series in (thresholds or {}) for c in comparisons)
    better = sum(c.mark in ("-", "*") for c in comparisons)
    incomparable = sum(c.mark == "x" for c in comparisons)
    lines = [f"### kernelwatch: {head[1][:8]} ({head[0]}) against {base[1][:8]} ({base[0]})",
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
    for c in comparisons:
        ratio = f"{c.ratio:.2f}" if c.ratio is not None and c.mark != "x" else "n/a"
        threshold = (thresholds or {}).get(c.series, factor)
        lines.append(f"| {c.mark.strip()} | {_value(c.before, c.unit)} | "
                     f"{_value(c.after, c.unit)} | {ratio} | {threshold:.2f} | "
                     f"`{c.benchmark}` ({c.params})"
                     + (f" (device check, {c.conditions})" if c.conditions else "")
                     + f" | {c.env} |")
    return "\n".join(lines)
