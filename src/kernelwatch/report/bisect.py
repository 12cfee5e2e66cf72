"""What `kernelwatch bisect` prints before the comparison: the culprit, its ratio to the
point it is judged against, and every point tested, in a markdown table."""

from __future__ import annotations

from kernelwatch.regression.bisect import Outcome, ratio_interval
from kernelwatch.report.format import fmt_value


def _fmt(v: float | None) -> str:
    return "none" if v is None else fmt_value(v, "seconds")


def summary(outcome: Outcome, kind: str, labels: dict[str, str],
            parents: dict[str, str] | None = None) -> list[str]:
    """The lines bisect prints before the comparison: the culprit on its own line, the ratio
    with its interval, and every point tested. `parents` (commit -> first parent) says
    whether the point the culprit is judged against is its parent: not so for a merge that
    brought GOOD in, which is judged against GOOD."""
    lines = []
    by_point = {v.measured.point: v for v in outcome.verdicts}
    if outcome.culprit and not outcome.candidates:
        lines.append(f"{outcome.culprit} is the first bad {kind}")
        parent, culprit = by_point[outcome.parent], by_point[outcome.culprit]
        real = (parents or {}).get(outcome.culprit, outcome.parent)
        against = (f"its parent {outcome.parent[:12]}" if real == outcome.parent else
                   f"GOOD {outcome.parent[:12]} (it is the merge that brought GOOD in; its "
                   f"first parent {real[:12]} lacks GOOD, so the slowdown is the merge's or "
                   f"came from that side: `kernelwatch bisect` between the merge base and "
                   f"{real[:12]} finds which)")
        if parent.measured.samples and culprit.measured.samples:
            r, lo, hi = ratio_interval(parent.measured.samples, culprit.measured.samples)
            lines.append(f"ratio {r:.2f} (99% CI {lo:.2f}-{hi:.2f}) against {against}: "
                         f"{_fmt(parent.measured.median)} -> {_fmt(culprit.measured.median)}")
        else:
            lines.append(f"it fails where {against} measured "
                         f"{_fmt(parent.measured.median)} (--failed-is-bad)")
    elif outcome.candidates:
        lines.append(f"the first bad {kind} is one of these (the ones between failed to "
                     f"measure): {', '.join(outcome.candidates)}")
    else:
        bad = outcome.verdicts[-1]
        ratio = f"{bad.change.ratio:.2f}" if bad.change else "n/a"
        beyond = ("beyond its processes: one of them reads like one of GOOD's"
                  if bad.change and bad.change.within_processes else "beyond the threshold")
        lines.append(f"no regression: {outcome.points[-1][:12]} is not worse than "
                     f"{outcome.points[0][:12]} {beyond} (ratio {ratio})")
    now = sum(not v.measured.reused for v in outcome.verdicts)
    lines += ["", f"{len(outcome.verdicts)} points tested of {len(outcome.points)} "
              f"(at most {outcome.bound}); {now} measured now, "
              f"{len(outcome.verdicts) - now} already recorded; a point was bad beyond "
              f"{outcome.bar:.2f}x GOOD (the threshold, or the geometric middle of GOOD and "
              "BAD where higher):", "",
              f"| {kind} | | median | vs GOOD | verdict |", "|---|---|---|---|---|"]
    order = {p: i for i, p in enumerate(outcome.points)}
    for v in sorted(outcome.verdicts, key=lambda v: order[v.measured.point]):
        m = v.measured
        ratio = f"{v.change.ratio:.2f}" if v.change else ("1.00" if v is outcome.good else "")
        verdict = ("GOOD" if v is outcome.good else "bad" if v.bad else
                   f"skipped ({'skipped' if m.skipped else 'failed'}: "
                   f"{m.reason or 'no reason recorded'})" if v.bad is None else
                   "good (within its processes)" if v.change and v.change.within_processes
                   else "good")
        if m.failed and v.bad:
            verdict = f"bad (failed: {m.reason or 'no reason recorded'})"
        lines.append(f"| {m.point[:12]} | {labels.get(m.point, '')} | {_fmt(m.median)} | "
                     f"{ratio} | {verdict}{' (recorded)' if m.reused else ''} |")
    return lines
