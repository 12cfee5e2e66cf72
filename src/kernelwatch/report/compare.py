"""`kernelwatch compare BASE HEAD`: every series measured at both commits, as markdown for a
pull-request comment or a CI step summary, significant changes first. The marks are
`asv compare`'s: `+` worse, `-` better, `!` newly failing (after it ran, or after it was
skipped), `*` no longer failing, `x` not comparable (the benchmark's `version` changed
between the two), blank otherwise; and two words where no number can be compared:
`failing` (failed at both) and `skipped` (skipped at HEAD, with the reason). A library's
commits measured with different requirement sets are compared as one environment (the
`env_key` that drops the set), the sets named beside. The kernels
one call launches are a change whenever their count differs, however little the time moved
(more kernels `+`: a fusion was lost). A device time that moved (by at most
detect.LAUNCH_BOUND) while its kernels are the same code at both, in one environment,
launched with another configuration autotuning picked, is marked `launch` and not counted
(the pick varies between runs with fresh compile caches; the picks are named below the
table). A device time that held still while the pick moved is unchanged but says so beside
it, with the picks: one pick is faster than another by up to detect.LAUNCH_BOUND, so the
same time across two picks can hide a change of the code (a 5% slowdown injected into a
run whose pick was 5% faster read 1.00 on an H100). A faster variant whose output fails
its workload's quality gate at HEAD is not counted as better. A series pooled from several
benchmark processes at both that moved beyond the factor while some process of one side
reads like one of the other's is not counted, and says so beside it with each side's
process medians (detect.compare). Where the host's dispatch (detect.HOST_FACT) moved between
the two, a time the host paces that moved the same way says so beside it, still counted,
and a paragraph above the table names the host's move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernelwatch.regression import detect, fidelity
from kernelwatch.report import clocks, host
from kernelwatch.report.format import fmt_value, md_code, md_text
from kernelwatch.results.rows import Row

if TYPE_CHECKING:
    from kernelwatch.inventory import Inventory

# asv compare's marks for detect.judge's flags: x for a benchmark whose code changed.
FAILING, SKIPPED, LAUNCH = "failing", "skipped", detect.LAUNCH
MARKS = {"worse": "+", "better": "-", "": " ", detect.NOT_COMPARABLE: "x",
         detect.LAUNCH: LAUNCH}
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
    skipped: tuple[bool, bool] = (False, False)  # (base, head) ran and were skipped
    # An unchanged device time whose kernels are the same code at both, launched as
    # autotuning picked otherwise: said beside it, since a pick moves the time by itself.
    held_across_picks: bool = False
    # How far the host's dispatch (detect.HOST_FACT) moved between the two in this
    # environment (after / before), on the fact's own row and on each time the host paces
    # that moved the same way: said beside it, still counted (the code may have moved too).
    host_ratio: float | None = None
    # The factor it was judged at (fidelity.factor): its own threshold, or the default.
    factor: float = detect.DEFAULT_FACTOR
    # On the GPU fact's own row (detect.GPU_FACT): how far it moved (after / before), where
    # it moved as a time would be flagged at the compare's factor.
    gpu_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.change.ratio if self.change else None


def _series(rows: list[Row], machine: str, commit: str,
            env_key: Callable[[str], str] | None = None) -> dict[tuple, Row]:
    key = env_key or (lambda env: env)
    return {(key(r.env_name), r.benchmark, tuple(r.params.items())): r for r in rows
            if r.machine == machine and r.commit == commit
            and (r.value is not None or r.failed or r.skipped)}



def compare(rows: list[Row], base: tuple[str, str], head: tuple[str, str], *,
            factor: float = detect.DEFAULT_FACTOR,
            thresholds: dict[str, float] | None = None,
            gate=None, env_key: Callable[[str], str] | None = None,
            inventories: dict | None = None) -> list[Comparison]:
    """Series recorded at `base` and `head`, each a (machine, full commit hash). A series
    with a threshold in `thresholds` (fidelity.series_thresholds of the head's machine) is
    judged as fidelity.factor says; the others at `factor`. `env_key` names the
    environment a series is matched by (a library's commits: without its requirement set).
    `inventories`: (machine, commit, env, case key) -> the case's kernel inventory, where a
    device time whose kernels only changed launch, in one environment, is marked LAUNCH
    when it moved, and `held_across_picks` (said beside it) when it did not."""
    from kernelwatch import inventory

    before, after = _series(rows, *base, env_key), _series(rows, *head, env_key)
    inv = inventories or {}
    checks = clocks.flagged_checks(rows)
    failing = _failing_gates(after.values(), gate)
    hosts = _host_moves(before, after, factor)
    out = []
    for key in sorted(before.keys() & after.keys()):
        b, a = before[key], after[key]
        env, bench, params = key
        key_of_series = detect.series_key(bench, [v for _, v in params])
        series_factor = fidelity.factor(thresholds, key_of_series, (b.processes, a.processes),
                                        factor)
        change, held_across_picks, inv_b, inv_a = None, False, None, None
        if a.version and b.version and a.version != b.version:
            mark = MARKS[detect.NOT_COMPARABLE]
        elif a.failed and b.failed:
            mark = FAILING
        elif a.failed:
            mark = "!"  # after a value, or after a skip: either way it now fails
        elif b.failed and not a.skipped:
            mark = "*"
        elif a.skipped:
            mark = SKIPPED
        elif a.median is None or b.median is None:
            mark = " "
        else:
            case = f"{bench.split('.')[0]}({', '.join(v for _, v in params)})"
            inv_b, inv_a = inv.get((*base, b.env_name, case)), inv.get((*head, a.env_name, case))
            launch_moved = (b.env_name == a.env_name and detect.same_hardware(b.env, a.env)
                            and bench.endswith(detect.DEVICE_TIME)
                            and inventory.only_launch_moved(inv_b, inv_a))
            change = detect.judge(bench, a.unit, b.samples or [b.median],
                                  a.samples or [a.median],
                                  factor=series_factor,
                                  launch_moved=launch_moved,
                                  processes=(b.processes, a.processes))
            mark = MARKS[change.flag]
            # moved beyond the factor within its processes is not "unchanged": not this note
            held_across_picks = launch_moved and not change.flag and not change.within_processes
        notes = [f"{side}: {note}" for side, (machine, commit) in (("base", base), ("head", head))
                 if (note := clocks.note_for(checks, machine, env, commit, bench, params))]
        conditions = f"device check, {'; '.join(notes)}" if notes else ""
        why = [f"{side}: {r.reason}" for side, r in (("base", b), ("head", a))
               if (r.failed or r.skipped) and r.reason]
        if len(why) == 2 and b.reason == a.reason:
            why = [f"base and head: {a.reason}"]  # one long reason, said once
        if why:
            conditions = "; ".join(filter(None, [conditions, *why]))
        if env_key and b.env_name != a.env_name:
            conditions = "; ".join(filter(None, [conditions,
                                                 _env_change(b.env_name, a.env_name)]))
        if held_across_picks:
            conditions = "; ".join(filter(None, [conditions, _held_across_picks(inv_b, inv_a)]))
        if change and change.within_processes:
            conditions = "; ".join(filter(None, [conditions, _within_processes(b, a)]))
        moved = hosts.get(env)
        host_ratio = moved if (bench == detect.HOST_FACT or host.moved_with(
            a, change.flag if change else "", moved)) else None
        if host_ratio and change and bench != detect.HOST_FACT:
            conditions = "; ".join(filter(None, [conditions, host.note(
                host_ratio, change.ratio, series_factor)]))
        reason = failing.get((env, bench.split(".")[0], params))
        if mark == "-" and reason:
            mark = " "  # a speedup counts only when the output passes its quality gate
            conditions = "; ".join(filter(None, [conditions, "faster, not counted: fails its "
                                                 f"quality gate ({reason})"]))
        gpu_ratio = (host.fact_ratio(b, a, factor)
                     if bench == detect.GPU_FACT and a.device_type == "cuda" else None)
        out.append(Comparison(env, bench, ", ".join(v for _, v in params), a.unit,
                              b.median, a.median, change, mark, key_of_series,
                              conditions, tuple(k for k, _ in params),
                              (b.skipped, a.skipped), held_across_picks, host_ratio,
                              series_factor, gpu_ratio))
    order = {"+": 0, "!": 1, FAILING: 2, SKIPPED: 3, "-": 4, "*": 5, LAUNCH: 6, "x": 7, " ": 8}
    # an unchanged time across two picks comes right after the moved ones: it is as much
    # the pick's as theirs
    out.sort(key=lambda c: (order[LAUNCH] if c.held_across_picks else order[c.mark],
                            c.mark != LAUNCH,
                            c.benchmark.startswith(detect.MACHINE_FACTS),
                            -abs((c.ratio or 1) - 1)))
    return out


def _host_moves(before: dict[tuple, Row], after: dict[tuple, Row],
                factor: float) -> dict[str, float]:
    """{environment: how far the host's dispatch moved} where it moved beyond `factor`."""
    moves = {key[0]: host.fact_ratio(before[key], after[key], factor)
             for key in before.keys() & after.keys() if key[1] == detect.HOST_FACT}
    return {env: ratio for env, ratio in moves.items() if ratio}


def _held_across_picks(before: Inventory | dict, after: Inventory | dict) -> str:
    """Beside a device time that held still while autotuning's pick moved: the picks, and
    why the unchanged time is not the last word."""
    from kernelwatch import inventory

    return (f"{inventory.launch_difference(before, after)}; unchanged across two picks, "
            "which differ by themselves: a change of the code can hide behind the new pick")


def _within_processes(before: Row, after: Row) -> str:
    """What a change inside its processes' spread says: each side's process medians."""
    def levels(r: Row) -> str:
        medians = detect.process_medians(r.samples or [], r.processes) or []
        return ", ".join(fmt_value(m, r.unit) for m in sorted(medians))

    return (f"not counted: within its processes (medians of base's {before.processes}: "
            f"{levels(before)}; head's {after.processes}: {levels(after)})")


def _env_change(before: str, after: str) -> str:
    """What differs between two environment names (a library's requirement sets)."""
    b, a = before.split("-"), after.split("-")
    old = "-".join(t for t in b if t not in a)
    new = "-".join(t for t in a if t not in b)
    label = "requirement set" if "KERNELWATCH_REQUIREMENTS" in old + new else "environment"
    strip = "KERNELWATCH_REQUIREMENTS"
    return f"{label} {old.replace(strip, '')} -> {new.replace(strip, '')}"


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
    """(env, workload, params items) of the cases whose time or kernel count changed, or
    whose device time held still across another autotuning pick (its picks are named)."""
    return {(c.env, c.benchmark.split(".")[0], tuple(zip(c.param_names, c.params.split(", "),
                                                          strict=False)))
            for c in comparisons if (c.mark in ("+", "-", LAUNCH) or c.held_across_picks)
            and (c.unit == "seconds" or c.benchmark.endswith(detect.KERNEL_COUNT))}


def _host_lines(comparisons: list[Comparison]) -> list[str]:
    """A paragraph per environment whose host's dispatch moved: the host, not only the code,
    changed between the two."""
    lines = []
    for c in comparisons:
        if c.benchmark == detect.HOST_FACT and c.host_ratio:
            paced = sum(d.host_ratio is not None and d.env == c.env and d is not c
                        for d in comparisons)
            slower = c.host_ratio > 1
            verdict = "blaming" if slower else "crediting"
            lines += ["", f"The host moved between the two in {md_code(c.env)}: one tiny "
                      f"op's dispatch took {c.host_ratio:.2f}x as long at HEAD "
                      f"({md_code(c.benchmark)}, {_value(c.before, c.unit)} -> "
                      f"{_value(c.after, c.unit)}). {paced} flagged time"
                      f"{'s' if paced != 1 else ''} the host paces (caller time, latency, "
                      f"compile, decode steps) got {'slower' if slower else 'faster'} with it "
                      "and say so beside them; a device time does not carry the host. Measure "
                      f"both commits on one quiet host before {verdict} the code."]
    return lines


def _gpu_lines(comparisons: list[Comparison]) -> list[str]:
    """A paragraph per environment whose GPU fact moved: the GPU, not only the code,
    changed between the two."""
    lines = []
    for c in comparisons:
        if c.gpu_ratio:
            verdict = "blaming" if c.gpu_ratio > 1 else "crediting"
            lines += ["", f"The GPU moved between the two in {md_code(c.env)}: a bf16 matmul "
                      f"took {c.gpu_ratio:.2f}x as long at HEAD ({md_code(c.benchmark)}, "
                      f"{_value(c.before, c.unit)} -> {_value(c.after, c.unit)} a TFLOP). "
                      "Every time the GPU paces (device times, and the GPU's part of caller "
                      "times, latencies and decode steps) can move with it. Measure both "
                      f"commits on one quiet GPU before {verdict} the code."]
    return lines


def _value(v: float | None, unit: str, skipped: bool = False) -> str:
    if v is None:
        return "skipped" if skipped else "failed"
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
    own_of = thresholds or {}
    # judged at the widest factor because no factor held in their A/A (fidelity.factor)
    wide = sum(own_of.get(c.series) == fidelity.UNHELD and c.factor == fidelity.FACTORS[-1]
               for c in comparisons)
    own = wide + sum(own_of.get(c.series) not in (None, fidelity.UNHELD) for c in comparisons)
    better = sum(c.mark in ("-", "*") for c in comparisons)
    incomparable = sum(c.mark == "x" for c in comparisons)
    failing = sum(c.mark == FAILING for c in comparisons)
    skipped = sum(c.mark == SKIPPED for c in comparisons)
    launch = sum(c.mark == LAUNCH for c in comparisons)
    held = sum(c.held_across_picks for c in comparisons)
    within = sum(bool(c.change and c.change.within_processes) for c in comparisons)
    lines = [f"### kernelwatch: {head[1][:8]} ({md_code(head[0])}) against {base[1][:8]} "
             f"({md_code(base[0])})",
             "",
             f"{worse} worse, {better} better, {failing} failing, {skipped} skipped, "
             f"{incomparable} not comparable, "
             + (f"{launch} moved with autotuning's launch pick, " if launch else "")
             + f"{len(comparisons) - worse - better - incomparable - failing - skipped - launch} "
             "unchanged"
             + (f" ({held} across another launch pick: said beside it)" if held else "")
             + f" of {len(comparisons)} series (a change counts when asv's test on "
             "the samples "
             f"finds it significant and the medians differ by more than {factor:.2f}x"
             + (f", or by the series' own threshold from `kernelwatch fidelity` where "
                f"measured ({own} series, column `threshold`"
                + (f"; {wide} of them at {fidelity.FACTORS[-1]:.2f}, the widest it tries, "
                   "since no factor held in their A/A: runs of `kernelwatch run --processes "
                   f"K` judge them at {factor:.2f} and beyond every process of the other side, "
                   "and `kernelwatch fidelity --pool K` says how far that holds" if wide else "")
                + ")" if own else "") + "; `+` "
             "worse, `-` better, `!` newly failing, `*` fixed, `failing` failed at both, "
             "`skipped` skipped at HEAD (the reason beside), `x` not comparable: the "
             "benchmark's version changed"
             + ("; `launch` device time of the same kernels' code at both, launched as "
                "autotuning picked otherwise: the pick moves between runs with fresh compile "
                "caches, so a change up to "
                f"{detect.LAUNCH_BOUND:.2f}x is shown, not counted" if launch else "")
             + (f"; {within} series pooled from several processes at both moved beyond "
                "the factor but not beyond every process of the other side: listed, not "
                "counted" if within else "")
             + ").",
             *_host_lines(comparisons),
             *_gpu_lines(comparisons),
             "",
             "| | before | after | ratio | threshold | benchmark (parameters) | environment |",
             "|---|---|---|---|---|---|---|"]
    for c in comparisons[:row_limit]:
        ratio = f"{c.ratio:.2f}" if c.ratio is not None and c.mark != "x" else "n/a"
        threshold = c.factor
        lines.append(f"| {c.mark.strip()} | {_value(c.before, c.unit, c.skipped[0])} | "
                     f"{_value(c.after, c.unit, c.skipped[1])} | {ratio} | {threshold:.2f} | "
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
