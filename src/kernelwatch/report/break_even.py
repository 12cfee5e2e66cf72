"""The break-even page: after how many calls a compiled or quantized variant has paid back
its one-time cost, per case, per environment, on the device's clock and on the caller's.

    one-time cost = the variant's first run - the baseline's first run (`track_first_run`:
                    a fresh process with fresh compile caches), or its cold compile
                    (`track_cold_compile`) where the workload records no first run;
    saving per call = baseline time - variant time (the workload's primary timed track;
                    and the caller's time where recorded);
    break-even = cost / saving, "never" where the variant is not faster.

Reported, never asserted: a figure for a reader deciding whether compiling pays for the
number of calls (tokens, layers, images) their job makes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from kernelwatch.regression import detect
from kernelwatch.report.format import NAV, fmt_seconds, html_table, page
from kernelwatch.report.speedups import PRIMARY_TRACKS, BaselineLookup
from kernelwatch.results.rows import Row, branch_order

ONE_TIME = ("track_first_run", "track_cold_compile")


def rows_of(rows: list[Row], baseline_for: BaselineLookup) -> list[dict]:
    """One dict per (machine, environment, workload case, variant) with a one-time cost."""
    # The newest value of each series, keyed so each lookup below is one dict access.
    latest: dict[tuple, Row] = {}
    for r in sorted(rows, key=lambda r: r.date):
        if r.median is not None and "variant" in r.params:
            workload, track = r.workload, r.track
            latest[(r.machine, r.env_name, workload, track, r.case, r.params["variant"])] = r

    def find(r: Row, tracks: tuple[str, ...], variant: str) -> Row | None:
        workload = r.workload
        return next((latest[k] for track in tracks
                     if (k := (r.machine, r.env_name, workload, track, r.case, variant))
                     in latest), None)

    out = []
    for (machine, env, workload, track, case, variant), r in sorted(latest.items()):
        if track not in ONE_TIME:
            continue
        baseline = baseline_for(workload, r.device_type)
        if variant == baseline:
            continue
        if track == "track_cold_compile" and find(r, ("track_first_run",), variant):
            continue  # the first run is the fuller one-time cost
        base_first = find(r, (track,), baseline)
        cost = r.median - (base_first.median if base_first and track == "track_first_run"
                           else 0.0)
        timed, base_timed = find(r, PRIMARY_TRACKS, variant), find(r, PRIMARY_TRACKS, baseline)
        caller = find(r, ("track_caller_time",), variant)
        base_caller = find(r, ("track_caller_time",), baseline)
        if not (timed and base_timed):
            continue
        row = {"machine": machine, "env": r.env.get("torch", env), "workload": workload,
               "case": ", ".join(v for _, v in case), "variant": variant,
               "baseline": baseline, "cost": cost, "cost_of": track.removeprefix("track_"),
               "saving": base_timed.median - timed.median}
        row["calls"] = cost / row["saving"] if row["saving"] > 0 else None
        if caller and base_caller:
            row["caller_saving"] = base_caller.median - caller.median
            row["caller_calls"] = (cost / row["caller_saving"] if row["caller_saving"] > 0
                                   else None)
        out.append(row)
    return out


@dataclass(frozen=True)
class Drift:
    """A variant's break-even at two commits (calls; None: never pays back)."""
    env: str
    workload: str
    case: str
    variant: str
    before: float | None
    after: float | None


def calls_text(calls: float | None) -> str:
    return "never" if calls is None else f"{calls:,.0f} calls"


def drift(rows: list[Row], base: tuple[str, str], head: tuple[str, str],
          baseline_for: BaselineLookup, factor: float = detect.DEFAULT_FACTOR) -> list[Drift]:
    """Each variant whose break-even moved beyond `factor` between `base` and `head` (each a
    (machine, full commit hash)), or began or stopped paying back."""
    def at(machine: str, commit: str) -> dict[tuple, float | None]:
        picked = [r for r in rows if r.machine == machine and r.commit == commit]
        return {(f["env"], f["workload"], f["case"], f["variant"]): f["calls"]
                for f in rows_of(picked, baseline_for)}

    before, after = at(*base), at(*head)
    out = []
    for key in sorted(before.keys() & after.keys()):
        b, a = before[key], after[key]
        if (b is None) != (a is None) or (b and a and max(a / b, b / a) > factor):
            out.append(Drift(*key, b, a))
    return out


def _newest_pairs(rows: list[Row], commit_order: dict[str, int] | None
                  ) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Per machine, (its previous commit, its newest commit), ordered as site.changes orders
    a series: by `commit_order` (hash -> position in the branch, oldest 0) where given, else
    by date."""
    by_machine: dict[str, list[str]] = defaultdict(list)
    for r in sorted(rows, key=branch_order(commit_order)):
        by_machine[r.machine].append(r.commit)
    pairs = []
    for machine, seen in sorted(by_machine.items()):
        commits = list(dict.fromkeys(seen))
        if len(commits) >= 2:
            pairs.append(((machine, commits[-2]), (machine, commits[-1])))
    return pairs


def _drift_parts(rows: list[Row], baseline_for: BaselineLookup,
                 commit_order: dict[str, int] | None, factor: float) -> list[str]:
    body = [[machine, d.env, d.workload, d.case, d.variant,
             f"{old[:8]} -> {new[:8]}", calls_text(d.before), calls_text(d.after)]
            for (machine, old), (_, new) in _newest_pairs(rows, commit_order)
            for d in drift(rows, (machine, old), (machine, new), baseline_for, factor)]
    parts = ["<h2>Break-even drift: the newest commit against the one before</h2>",
             f"<p>A variant whose break-even moved by more than {factor - 1:.0%} (or began "
             "or stopped paying back) is a change, as in <code>kernelwatch compare</code>: "
             "the compile or quantization cost, or the saving per call, moved.</p>"]
    if not body:
        return [*parts, "<p>No break-even moved beyond the threshold.</p>"]
    return [*parts, html_table(["machine", "torch", "workload", "case", "variant",
                                "commits", "break-even before", "after"], body)]


def write(rows: list[Row], out_dir: Path, baseline_for: BaselineLookup,
          commit_order: dict[str, int] | None = None,
          factor: float = detect.DEFAULT_FACTOR) -> Path:
    found = rows_of(rows, baseline_for)
    parts = ["<h1>Break-even: when compiling or quantizing pays</h1>", NAV,
             "<p>One-time cost: the variant's first run minus the baseline's (a fresh "
             "process, fresh compile caches), or its cold compile. Saving: baseline time "
             "minus variant time per call (device time; and what a Python caller pays, "
             "where recorded). Break-even: cost / saving, in calls of the benchmark (a "
             "kernel call, a GPTQ layer, a generated token). Reported, never asserted.</p>"]
    if not found:
        parts.append("<p>No variant has both a one-time cost and a steady time recorded "
                     "beside its baseline yet.</p>")
    head = ["machine", "torch", "workload", "case", "variant", "one-time cost", "of",
            "saving / call", "break-even (calls)", "caller saving / call",
            "break-even, caller (calls)"]

    def calls(v):
        if v is None:
            return "never"
        return "at once (no extra cost)" if v <= 0 else f"{v:,.0f}"

    body = []
    for f in found:
        cells = [f["machine"], f["env"], f["workload"], f["case"],
                 f"{f['variant']} vs {f['baseline']}", fmt_seconds(f["cost"]), f["cost_of"],
                 fmt_seconds(f["saving"]) if f["saving"] > 0 else "none",
                 calls(f["calls"]),
                 fmt_seconds(f["caller_saving"]) if f.get("caller_saving", 0) > 0 else
                 ("none" if "caller_saving" in f else "n/a"),
                 calls(f["caller_calls"]) if "caller_calls" in f else "n/a"]
        body.append(cells)
    if body:
        parts.append(html_table(head, body))
    parts += _drift_parts(rows, baseline_for, commit_order, factor)
    path = out_dir / "break-even.html"
    path.write_text(page("kernelwatch: break-even", parts))
    return path
