"""`kernelwatch fidelity`'s figures for a reader: one row per timed series (its noise, its
false alarms and the smallest slowdown caught), as the site's fidelity page and as markdown.
"""

from __future__ import annotations

from collections.abc import Sequence

from kernelwatch.regression.fidelity import CAUGHT_RATE, FACTORS, Analysis, Measured
from kernelwatch.report.format import fmt_seconds


def _pct(x: float | None) -> str:
    return "none" if x is None else f"{100 * x:.0f}%"


NOTE = ("Each pair compares two disjoint sets of fresh processes (processes: how many per "
        "side, their samples pooled as `kernelwatch run --processes` records them). run CV: "
        "spread of the medians of one side; "
        "sample CV: inside one process. threshold: the smallest factor with no A/A alarm "
        "and at least 3 x sqrt(2) x run CV above 1 (\"> 1.50\": none of the factors "
        "tried held; compare and the change table judge such a series at 1.50 where both "
        "sides are one process, at 1.10 where they pool processes); caught: A/B pairs "
        "flagged worse at that "
        f"threshold; smallest caught: the smallest slowdown caught in at least "
        f"{CAUGHT_RATE:.0%} of pairs. injected -> achieved: the slowdown as measured inside "
        "one process. From an A/A on record (`--from-runs`) the processes are the runs', "
        "interleaved so that each pair spans two runs, and nothing was injected.")


# An A/A on record (`--from-runs`) injected nothing: its catch rate is unknown, not zero.
NOT_INJECTED = "not injected"


def table(analyses: Sequence[Analysis], skipped: Sequence[Measured] = ()
          ) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: noise; alarms and catches at the threshold; asv's 1.10 beside."""
    slowdowns = sorted({x for a in analyses for x in a.caught}, key=float)
    head = ["series", "processes", "median", "run CV", "sample CV", "threshold", "A/A alarms",
            *[f"{_pct(float(x))} caught" for x in slowdowns], "smallest caught",
            "asv 1.10: A/A alarms", "asv 1.10: smallest caught", "injected -> achieved"]
    rows = []
    for a in analyses:
        t = f"{a.threshold:.2f}" if a.threshold else None
        worst = f"{FACTORS[-1]:.2f}"
        rows.append([
            a.key, str(a.pool), fmt_seconds(a.median_seconds), f"{100 * a.run_cv:.2f}%",
            f"{100 * a.sample_cv:.2f}%", t or f"> {worst}",
            f"{a.aa_alarms[t or worst]}/{a.pairs}",
            *[f"{a.caught[x][t]}/{a.pairs}" if t and x in a.caught else "-"
              for x in slowdowns],
            _pct(a.smallest_caught) if a.caught else NOT_INJECTED,
            f"{a.asv_aa_alarms}/{a.pairs}",
            _pct(a.asv_smallest_caught) if a.caught else NOT_INJECTED,
            ", ".join(f"{_pct(float(x))}->{100 * v:.1f}%" for x, v in a.achieved.items())])
    rows += [[m.target.key, f"skipped: {m.skipped}", *[""] * (len(head) - 2)] for m in skipped]
    return head, rows


def markdown(analyses: Sequence[Analysis], skipped: Sequence[Measured] = ()) -> str:
    if not analyses and not skipped:
        return "no fidelity runs yet"
    head, rows = table(analyses, skipped)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([*lines, "", NOTE])
