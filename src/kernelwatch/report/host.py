"""Whether the host moved under a time: the machine's dispatch fact (regression.detect's
HOST_FACT) at two measurements, and what is said beside a time the host paces that moved
the same way, in `kernelwatch compare` and in the site's change table. Still counted: the
code may have moved too. And between an A/A's runs (`kernelwatch fidelity --from-runs`):
the runs whose host moved, which widen the thresholds read from them."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from kernelwatch.regression import detect
from kernelwatch.report import clocks
from kernelwatch.report.format import fmt_value
from kernelwatch.results.rows import Row


def fact_ratio(before: Row | None, after: Row | None,
               factor: float = detect.DEFAULT_FACTOR) -> float | None:
    """How far one of the machine's facts (the host's dispatch, or a GPU fact) moved from
    `before` to `after` (its rows at two measurements), where it moved beyond `factor`;
    None where it did not, or was not measured at both by one version of its benchmark."""
    if not (before and after and before.median and after.median) or len(
            versions([before, after])) > 1:
        return None  # not measured at both, or measured by different benchmark code
    return detect.host_ratio(before.samples or [before.median],
                             after.samples or [after.median], factor)


def moved_runs(facts: dict[str, Row], factor: float = detect.DEFAULT_FACTOR
               ) -> tuple[float, dict[str, float]] | None:
    """Of an A/A's runs (run -> its dispatch fact's row, one commit), the runs whose host's
    dispatch sat beyond `factor` from the runs' middle: (the middle run's median, {run: its
    median / that}). The middle is a run's own (the lower of two middle ones), so that two
    slow runs of four leave the two others as they were. Only the middle of three runs or
    more can say which run moved (of two, either); None for fewer, or where runs of
    different benchmark code measured it."""
    medians = {run: r.median for run, r in facts.items() if r.median}
    if len(medians) < 3 or len(versions(facts.values())) > 1:
        return None
    middle = statistics.median_low(medians.values())
    ratios = {run: m / middle for run, m in medians.items()}
    return middle, {run: x for run, x in ratios.items() if max(x, 1 / x) > factor}


def versions(rows: Iterable[Row]) -> set[str]:
    """The benchmark versions that measured `rows` (those that say)."""
    return {r.version for r in rows if r.version}


def between_runs(rows: Sequence[Row], runs: Sequence[str]) -> list[str]:
    """What an A/A's thresholds (`kernelwatch fidelity --from-runs`) should be read with:
    the runs that did not record the host's dispatch, and those whose host dispatched
    slower or faster than the others' (moved_runs). Such a run can widen the spread of
    every series the host paces, and so their thresholds: on a lent H100, GPT-2's decode steps
    held within 1.05 in three of five runs and moved 1.18-1.47x, all together, in one.
    `rows`: one commit's rows in one environment."""
    facts = {r.machine: r for r in rows
             if r.benchmark == detect.HOST_FACT and r.machine in runs and r.median}
    lines = []
    lacking = [run for run in runs if run not in facts]
    if lacking:
        lines.append(f"the host's dispatch ({detect.HOST_FACT}) is not recorded in "
                     f"{', '.join(lacking)}, so whether the host moved between the runs is "
                     "not known (runs made with --skip-machine-facts, or before kernelwatch "
                     "measured it)")
    measured_by = versions(facts.values())
    if len(measured_by) > 1:
        lines.append(f"the host's dispatch was measured by different versions of its benchmark "
                     f"in these runs ({', '.join(sorted(measured_by))}), so its readings are "
                     "not compared")
    found = moved_runs(facts)
    if found and found[1]:
        middle, moved = found
        held = [run for run in runs if run in facts and run not in moved]
        lines.append(
            "the host's dispatch moved in "
            + ", ".join(f"{run} ({x:.2f}x)" for run, x in moved.items())
            + f" against the runs' median of {fmt_value(middle, 'seconds')}; it is timed in "
            "a process of its own, so check whether those runs' series the host paces "
            "(caller times, latencies, decode steps) moved too: if so, their thresholds are "
            "wider than a quiet host needs"
            + (f", and --from-runs {','.join(held)} reads the thresholds from the runs whose "
               "host held" if len(held) >= 2 else ""))
    return lines


def moved_with(row: Row, flag: str, host: float | None) -> bool:
    """Whether `row`, a time flagged `flag` ("worse", "better"), is one the host paces and
    moved the way the host's dispatch moved (`host`: fact_ratio)."""
    from kernelwatch import workloads

    if not (host and flag in ("worse", "better") and row.unit == "seconds"):
        return False
    method = clocks.method(row, lambda p: workloads.device_method_for_benchmark(
        row.benchmark, p) or "")
    return (flag == "worse") == (host > 1) and detect.host_paced(
        row.benchmark, row.device_type, method)


def note(host: float, ratio: float, factor: float) -> str:
    """Beside a host-paced time that moved with the host: how far the host moved, and
    whether the time (`ratio`) moved further than a host that much slower (or faster)
    explains, by more than the series' threshold (`factor`): a time all host work moves as
    far as the host, within its noise."""
    beyond = ratio > host * factor if host > 1 else ratio < host / factor
    return (f"the host moved with it: one tiny op's dispatch {host:.2f}x "
            f"({detect.HOST_FACT}); this time carries the host's work"
            + (", and moved further than the host" if beyond else ""))
