"""Why a series moved: for every case whose time changed between two commits, the change
split into device time, host time (what a caller pays beyond the device's own work: dispatch,
guards, the compiled wrapper), compile time, compile health (graph breaks, recompiles) and
the kernels one call launches; and each variant's break-even (calls to pay back its compile
or quantization) at both commits, which is a change of its own when it drifts beyond the
threshold. Reads recorded results only; says in words which part moved where it can tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernelwatch.regression import detect
from kernelwatch.report import break_even
from kernelwatch.report.format import fmt_seconds, md_code, md_list
from kernelwatch.results.rows import Row

# The tracks a case's explanation reads, by the part of the cost they measure.
DEVICE, CALLER = "track_time", "track_caller_time"
COMPILE = ("track_cold_compile", "track_warm_compile")
HEALTH = ("track_graph_breaks", "track_recompiles", "track_unique_graphs")
KERNELS = "track_kernel_count"
# A part of the call that moved by less than this share of the whole call did not move.
UNCHANGED_SHARE = 0.01


@dataclass
class Explanation:
    case: str  # "workload (params)"
    parts: list[str] = field(default_factory=list)  # in words (markdown), largest first

    def markdown(self) -> str:
        return f"- {md_code(self.case)}: " + "; ".join(self.parts)


# Cases explained at most, in a comment that must stay readable (and under GitHub's size).
EXPLAIN_LIMIT = 50


def markdown(explanations: list[Explanation], limit: int = EXPLAIN_LIMIT) -> list[str]:
    """One markdown line per explanation, the first `limit`, and a count of the rest."""
    lines = [e.markdown() for e in explanations[:limit]]
    if len(explanations) > limit:
        lines.append(f"- and {len(explanations) - limit} more cases")
    return lines


def _case(r: Row) -> tuple:
    return (r.env_name, r.workload, tuple(r.params.items()))


def _by_case(rows: list[Row], machine: str, commit: str) -> dict[tuple, dict[str, Row]]:
    out: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        if r.machine == machine and r.commit == commit and r.median is not None:
            out.setdefault(_case(r), {})[r.track] = r
    return out


def _delta_seconds(name: str, before: float, after: float, whole: float) -> str:
    """`name` moved from `before` to `after` seconds per call; the share is of `whole`, the
    whole call's time before (a host part near zero has no meaningful share of its own).
    A move under UNCHANGED_SHARE of the call is said as "unchanged": "+0 s" reads as noise
    the reader must judge."""
    if abs(after - before) <= UNCHANGED_SHARE * (whole or abs(before)):
        return f"{name} unchanged"
    sign = "+" if after >= before else "-"
    share = f" ({100 * (after - before) / whole:+.0f}% of the call)" if whole else ""
    return f"{name} {sign}{fmt_seconds(abs(after - before))} per call{share}"


def explain(rows: list[Row], base: tuple[str, str], head: tuple[str, str],
            changed: set[tuple], inventories: dict | None = None) -> list[Explanation]:
    """One explanation per changed case. `changed` holds (env, workload, params items) of
    the cases whose time changed or held still across another autotuning pick
    (compare.timed_changes); `inventories` maps (machine, commit, env, case key) ->
    the recorded kernel inventory (kernelwatch.inventory's dict) where one was kept: each
    side's own machine, so two machines of one commit compare their own kernels."""
    from kernelwatch import inventory

    before, after = _by_case(rows, *base), _by_case(rows, *head)
    out = []
    for key in sorted(changed & before.keys() & after.keys()):
        b, a = before[key], after[key]
        env, workload, params = key
        parts: list[tuple[float, str]] = []  # (weight, words)
        inv_b = (inventories or {}).get((*base, env, _inventory_key(workload, params)))
        inv_a = (inventories or {}).get((*head, env, _inventory_key(workload, params)))
        if DEVICE in b and DEVICE in a:
            db, da = b[DEVICE].median, a[DEVICE].median
            whole = b[CALLER].median if CALLER in b else db
            parts.append((abs(da - db), _delta_seconds("device", db, da, whole)))
            if CALLER in b and CALLER in a:
                hb, ha = b[CALLER].median - db, a[CALLER].median - da
                if abs(ha - hb) > 0:
                    # dynamo checks every guard before each call: a change in their number
                    # is the host-side cause it can name
                    guards = inventory.new_guards(inv_b, inv_a) if inv_b and inv_a else ""
                    parts.append((abs(ha - hb), _delta_seconds("host", hb, ha, whole)
                                  + (f": {guards}" if guards else "")))
        for track in COMPILE:
            if track in b and track in a and b[track].median:
                cb, ca = b[track].median, a[track].median
                if abs(ca / cb - 1) > detect.DEFAULT_FACTOR - 1:
                    parts.append((0.0, f"{track.removeprefix('track_').replace('_', ' ')} "
                                       f"{fmt_seconds(cb)} -> {fmt_seconds(ca)}"))
        for track in HEALTH:
            if track in b and track in a and b[track].median != a[track].median:
                parts.append((0.0, f"{track.removeprefix('track_').replace('_', ' ')} "
                                   f"{b[track].median:g} -> {a[track].median:g}"))
        # What the kernels say: other kernels, other code, or (the same code) another
        # autotuned launch, which moves a compiled series between processes of one commit
        # as well as between two; a count that moved is said even without inventories.
        words = inventory.difference(inv_b, inv_a, names=md_list) if inv_b and inv_a else ""
        if KERNELS in b and KERNELS in a and b[KERNELS].median != a[KERNELS].median:
            words = words or f"kernels {b[KERNELS].median:g} -> {a[KERNELS].median:g}"
        if words:
            parts.append((float("inf"), words))
        if parts:
            parts.sort(key=lambda p: -p[0])
            out.append(Explanation(f"{workload} ({', '.join(v for _, v in params)})",
                                   [w for _, w in parts]))
    return out


def _inventory_key(workload: str, params: tuple) -> str:
    return f"{workload}({', '.join(v for _, v in params)})"


def break_even_drift(rows: list[Row], base: tuple[str, str], head: tuple[str, str],
                     baseline_for, factor: float = detect.DEFAULT_FACTOR) -> list[str]:
    """Markdown lines for each variant whose break-even moved beyond `factor` between the
    two commits (or began or stopped paying back); the first EXPLAIN_LIMIT, and a count of
    the rest."""
    drifts = break_even.drift(rows, base, head, baseline_for, factor)
    lines = [f"- {md_code(d.workload)} {md_code(d.case)}, {md_code(d.variant)}: break-even "
             f"{break_even.calls_text(d.before)} -> {break_even.calls_text(d.after)}"
             for d in drifts[:EXPLAIN_LIMIT]]
    if len(drifts) > EXPLAIN_LIMIT:
        lines.append(f"- and {len(drifts) - EXPLAIN_LIMIT} more variants")
    return lines
