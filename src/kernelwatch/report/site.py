"""kernelwatch's own views, written beside asv's published site (html/kernelwatch/).

asv's site assumes lower is better and shows one series at a time. These views answer the
questions asv cannot: how much faster than eager is each variant, how close to the memory
floor is it (GB/s and % of the measured copy bandwidth), and what changed since the
previous commit. Plain HTML, no scripts, so it opens offline.
"""

from __future__ import annotations

import dataclasses
import html
import textwrap
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from kernelwatch.regression import detect, fidelity
from kernelwatch.report import (
    break_even,
    copy_bandwidth,
    host,
    machine_fact,
    overview,
    regressions,
    roofline,
    speedups,
    torch_versions,
    views,
)
from kernelwatch.report import outcomes as outcome_view
from kernelwatch.report.format import (
    NAV,
    aligned,
    cell,
    env_label,
    fmt_seconds,
    html_table,
    markdown_table,
    page,
    short_env_names,
    with_values,
)
from kernelwatch.results.rows import Row, branch_order, load

TIME_SUFFIX = "Time.track_time"
# Beside each Time class's track_time (device time), what a Python caller pays per call.
CALLER_SUFFIX = "Time.track_caller_time"
BytesLookup = Callable[[str, dict], "int | None"]


def latest_commit_rows(rows: list[Row]) -> dict[tuple, list[Row]]:
    """The newest measurement of every series (benchmark and parameters) of each (machine,
    env): a run that measured only some cases at a newer commit does not hide the others.
    Rows a run did not measure (asv stores them as NaN) are not measurements."""
    by_env: dict[tuple, dict[tuple, Row]] = defaultdict(dict)
    for r in sorted(rows, key=lambda r: r.date):
        if r.value is None and not r.failed:
            continue
        by_env[(r.machine, r.env_name)][(r.benchmark, tuple(sorted(r.params.items())))] = r
    return {key: list(series.values()) for key, series in by_env.items()}


def _commits(env_rows: list[Row]) -> str:
    """The commits a view's rows come from, newest first."""
    newest_first = sorted(env_rows, key=lambda r: -r.date)
    commits = list(dict.fromkeys(r.commit[:8] for r in newest_first))
    return ("commit " if len(commits) == 1 else "commits ") + ", ".join(commits)


def speedup_rows(env_rows: list[Row], bytes_moved: BytesLookup | None) -> list[dict]:
    """One dict per timed case: median device time and speedup vs eager of the same case, GB/s
    and % of copy bandwidth; and what a Python caller pays (CALLER_SUFFIX), its speedup and
    the host overhead per call (caller minus device). On a CPU the two times are one."""
    # A workload with a summary of its own (report/<workload>.py) is left to it.
    own = tuple(v.PREFIX for v in views() if getattr(v, "PREFIX", None))
    timed = [r for r in env_rows if r.benchmark.endswith(TIME_SUFFIX) and "variant" in r.params
             and r.median is not None and not r.benchmark.startswith(own)]
    on_cpu = bool(env_rows) and env_rows[0].device_type == "cpu"
    caller = {(r.benchmark, _params_key(r)): r.median
              for r in env_rows if r.benchmark.endswith(CALLER_SUFFIX) and r.median}
    eager: dict[tuple, float] = {}
    eager_caller: dict[tuple, float] = {}
    for r in timed:
        if r.params["variant"] == "eager" and r.median:
            eager[_case_key(r)] = r.median
            eager_caller[_case_key(r)] = _caller_of(r, caller, on_cpu)
    peak = copy_bandwidth(env_rows)
    out = []
    for r in sorted(timed, key=lambda r: (_case_key(r), r.params["variant"])):
        t = r.median
        base = eager.get(_case_key(r))
        nbytes = bytes_moved(r.benchmark, r.params) if bytes_moved else None
        gbs = nbytes / t / 1e9 if (nbytes and t) else None
        called = _caller_of(r, caller, on_cpu)
        base_called = eager_caller.get(_case_key(r))
        out.append({
            "workload": r.workload, **r.params, "seconds": t,
            "speedup": base / t if (base and t) else None,
            "gb_per_s": gbs,
            "pct_copy": 100 * gbs * 1e9 / peak if (gbs and peak) else None,
            "caller_seconds": called,
            "caller_speedup": base_called / called if (base_called and called) else None,
            "host_overhead": called - t if (called and t) else None,
        })
    return out


def _params_key(r: Row) -> tuple:
    return tuple(sorted(r.params.items()))


def _caller_of(r: Row, caller: dict[tuple, float], on_cpu: bool) -> float | None:
    """The caller's time beside a device time: measured, or on a CPU the time itself."""
    name = r.benchmark.removesuffix(TIME_SUFFIX) + CALLER_SUFFIX
    measured = caller.get((name, _params_key(r)))
    return measured or (r.median if on_cpu else None)


def _case_key(r: Row) -> tuple:
    return (r.benchmark, *(v for k, v in sorted(r.params.items()) if k != "variant"))


def changes(rows: list[Row], thresholds: dict[str, dict[str, float]] | None = None,
            commit_order: dict[str, int] | None = None,
            inventories: dict[tuple, dict] | None = None) -> list[dict]:
    """Each series' newest value against the commit before it, flagged by
    kernelwatch.regression.detect: significant on the samples and beyond the threshold,
    which is the series' own from `kernelwatch fidelity` on its machine (machine -> series
    key -> factor) where measured, else asv.conf.json's 10%. Commits are ordered by
    `commit_order` (hash -> position in the branch's history, oldest 0) where given: commit
    dates have one-second resolution and can tie; else by date. A kernel count that differs
    is a change however little the time moved, with the kernels that went and came as its
    note (`inventories`: (machine, commit, env, case) -> inventory); a device time that moved
    with only its kernels' launch is flagged `launch`, not worse or better (detect.judge).
    A time the host paces that moved the way the machine's host moved between the two
    commits says so in its note (report.host; the host's move judged at the default
    threshold, as the fact has none of its own)."""
    from kernelwatch import inventory

    in_branch = branch_order(commit_order)
    series: dict[tuple, list[Row]] = defaultdict(list)
    # (machine, env, commit) -> the host's dispatch there, the newest measurement of it as
    # each series takes its newest at a commit
    facts: dict[tuple, Row] = {}
    hosts: dict[tuple, float | None] = {}  # (machine, env, old, new commit) -> fact_ratio
    for r in rows:
        if r.median is not None:
            series[r.series].append(r)
            key = (r.machine, r.env_name, r.commit)
            if r.benchmark == detect.HOST_FACT and (
                    key not in facts or in_branch(r) >= in_branch(facts[key])):
                facts[key] = r
    out = []
    for (machine, env_name, bench, _params), rs in series.items():
        rs.sort(key=in_branch)
        commits = list(dict.fromkeys(r.commit for r in rs))
        if len(commits) < 2:
            continue
        new = next(r for r in reversed(rs) if r.commit == commits[-1])
        old = next(r for r in reversed(rs) if r.commit == commits[-2])
        if not old.median:
            continue
        ratio = new.median / old.median
        factor = fidelity.factor((thresholds or {}).get(machine), new.series_key,
                                 (old.processes, new.processes), detect.DEFAULT_FACTOR)
        case = f"{bench.split('.')[0]}({', '.join(new.params.values())})"
        inv = inventories or {}
        before_inv = inv.get((machine, old.commit, env_name, case))
        after_inv = inv.get((machine, new.commit, env_name, case))
        flag = detect.judge(bench, new.unit, old.samples or [old.median],
                            new.samples or [new.median], factor=factor,
                            versions=(old.version, new.version),
                            launch_moved=detect.same_hardware(old.env, new.env)
                            and inventory.only_launch_moved(before_inv, after_inv),
                            processes=(old.processes, new.processes)).flag
        # what the kernels say of the change: fewer fusions, other code, or (same code)
        # another launch picked by autotuning
        note = (inventory.difference(before_inv, after_inv) if before_inv and after_inv
                else "")
        if flag in ("worse", "better"):
            pair = (machine, env_name, old.commit, new.commit)
            if pair not in hosts:  # one test of the host's samples per pair of commits
                hosts[pair] = host.fact_ratio(facts.get((machine, env_name, old.commit)),
                                              facts.get((machine, env_name, new.commit)))
            moved = hosts[pair]
            if host.moved_with(new, flag, moved):
                note = "; ".join(filter(None, [note, host.note(moved, ratio, factor)]))
        out.append({"machine": machine, "env": env_name, "benchmark": bench, "note": note,
                    "params": ", ".join(new.params.values()), "old": old.median,
                    "new": new.median, "ratio": ratio, "unit": new.unit,
                    "commits": f"{old.commit[:8]} -> {new.commit[:8]}", "flag": flag,
                    "params_dict": dict(new.params), "commit": new.commit,
                    "_newest": in_branch(new)})
    # Newest change first; within a commit, flagged rows, then the largest ratio.
    out.sort(key=lambda c: (c["_newest"], c["flag"] not in ("", detect.LAUNCH),
                            abs(c["ratio"] - 1)), reverse=True)
    for c in out:
        del c["_newest"]
    return out


SPEEDUP_COLUMNS = [("shape", ""), ("form", ""), ("dtype", ""), ("variant", ""),
                   ("seconds", "s"), ("speedup", "x"), ("gb_per_s", "f"), ("pct_copy", "f"),
                   ("caller_seconds", "s"), ("caller_speedup", "x"), ("host_overhead", "s")]
CALLER_HEADERS = ("caller time", "caller vs eager", "host/call")
SPEEDUP_HEADERS = ["shape", "form", "dtype", "variant", "device time", "vs eager",
                   "GB/s", "% copy BW", "caller time", "caller vs eager", "host/call"]


TEXT_WIDTH = 120  # a terminal's: titles wrap there


def text_table(rows: list[Row], bytes_moved: BytesLookup | None = None, *,
               markdown: bool = False) -> str:
    """The speedup view as plain text: the newest measurement of each case, per
    environment (named by what differs between the environments shown), each table with
    only the columns that have a value; with `markdown`, as markdown tables (docs/)."""
    def render(table: list[list[str]]) -> list[str]:
        return markdown_table(table) + [""] if markdown else aligned(table)

    lines = []
    groups = latest_commit_rows(rows)
    names = short_env_names(groups)
    for key, env_rows in sorted(groups.items()):
        peak, dispatch = copy_bandwidth(env_rows), machine_fact(env_rows, detect.HOST_FACT)
        heading = (f"{names[key]}  {_commits(env_rows)}"
                   + (f"  copy {peak / 1e9:.1f} GB/s" if peak else "")
                   + (f"  dispatch {fmt_seconds(dispatch)}" if dispatch else ""))
        lines.extend([f"### {heading}", ""] if markdown else [f"== {heading}"])
        # On a CPU the caller's time is the time itself: its columns would repeat it.
        columns = [(h, c) for h, c in zip(SPEEDUP_HEADERS, SPEEDUP_COLUMNS, strict=True)
                   if env_rows[0].device_type != "cpu" or h not in CALLER_HEADERS]
        table = [[h.removeprefix("device ") if env_rows[0].device_type == "cpu" else h
                  for h, _ in columns]] + [
            [cell(d.get(c), k) for _, (c, k) in columns]
            for d in speedup_rows(env_rows, bytes_moved)
        ]
        if len(table) > 1:
            lines.extend(render(with_values(table)))
        for view in views():
            for table in view.tables(env_rows):
                lines.extend([f"#### {table.title}", ""] if markdown else
                             textwrap.wrap(f"-- {table.title}", TEXT_WIDTH,
                                           subsequent_indent="   "))
                rows = [table.headers] + table.rows
                if env_rows[0].device_type == "cpu" and "device clock" in table.headers:
                    i = table.headers.index("device clock")  # the host's, on a CPU
                    rows = [r[:i] + r[i + 1:] for r in rows]
                lines.extend(render(with_values(rows)))
        lines.extend(outcome_view.text_lines([r for r in env_rows
                                              if r.failed or r.skipped]))
        lines.append("")
    return "\n".join(lines) if lines else "no results yet"


# machine -> (environment facts, table headers, table rows, note): `kernelwatch fidelity`.
FidelityTables = dict[str, tuple[dict, list[str], list[list[str]], str]]


def _env_heading(env_rows: list[Row], name: str | None = None) -> str:
    r0 = env_rows[0]
    env_facts = ", ".join(f"{k}={v}" for k, v in sorted(r0.env.items())
                          if k in ("cpu", "gpu", "driver", "torch", "cuda", "num_cpu"))
    return (f"<h3>{html.escape(name or env_label(r0))} &mdash; "
            f"<code>{html.escape(_commits(env_rows))}</code></h3>"
            f"<p class=env>{html.escape(env_facts)}</p>")


def _inventories(results_dir: Path, rows: list[Row]) -> dict[tuple, dict]:
    """(machine, commit, env, case) -> the kernel inventory kept beside the results."""
    from kernelwatch import inventory_file

    out = {}
    for machine in sorted({r.machine for r in rows}):
        for (commit, env, case), entry in inventory_file.load_all(results_dir, machine).items():
            out[(machine, commit, env, case)] = entry
    return out


def write(results_dir: Path, html_dir: Path, bytes_moved: BytesLookup | None = None, *,
          fidelity: FidelityTables | None = None,
          thresholds: dict[str, dict[str, float]] | None = None,
          baseline_for: speedups.BaselineLookup | None = None,
          commit_order: dict[str, int] | None = None,
          flops: BytesLookup | None = None,
          gate: speedups.GateLookup | None = None,
          commit_subjects: dict[str, str] | None = None,
          commit_url: str | None = None,
          reference_for: roofline.ReferenceLookup | None = None,
          env_key: Callable[[str], str] | None = None) -> Path:
    """Write html/kernelwatch/: index.html (speedup vs eager per environment, and a count of
    flagged changes), regressions.html, writeups.html, roofline.html, torch.html,
    fidelity.html and (given `baseline_for`) speedups.html and break-even.html, from
    results/; return the index's path. asv's own site must already be in `html_dir`
    (regressions.html reads its regressions.xml). `env_key` names the environment a series
    is followed in (a library's history: without the requirement set of each commit, which
    stays in the row's facts as `asv environment`)."""
    rows = load(results_dir)
    if env_key:
        rows = [dataclasses.replace(r, env_name=env_key(r.env_name),
                                    env={**r.env, "asv environment": r.env_name})
                for r in rows]
    out_dir = Path(html_dir) / "kernelwatch"
    out_dir.mkdir(parents=True, exist_ok=True)
    ch = changes(rows, thresholds, commit_order, _inventories(results_dir, rows))
    for c in ch:  # a target library's history: its commits' subjects, linked where known
        subject = (commit_subjects or {}).get(c["commit"], "")
        c["commits"] += f" {subject}" if subject else ""
        c["commit_href"] = f"{commit_url}{c['commit']}" if commit_url else ""
    flagged = sum(c["flag"] == "worse" for c in ch)
    parts = ["<h1>kernelwatch</h1>", NAV,
             f'<p><a href="regressions.html">Regressions</a>: {flagged} of {len(ch)} '
             "series got significantly worse in their newest commit.</p>",
             f'<p><a href="outcomes.html">Skipped and failed</a>: '
             f"{sum(r.skipped for r in rows)} cases skipped and {sum(r.failed for r in rows)} "
             "failed across the results, each with the reason its run recorded.</p>",
             "<h2>Speedup vs eager: the newest measurement of each case, per environment</h2>",
             "<p>Device time is the median per call of the kernel's own work: on a GPU, "
             "CUDA-graph replays where the case can be captured, else the GPU's busy time in "
             "the call's kernels (the profiler's; the device clock column says which); caller "
             "time is what a Python loop calling it pays per call (no graph, host clock, one "
             "synchronize per sample), and host/call their difference: dispatch, guards and "
             "the compiled wrapper. On a CPU the two are one. GB/s is the fewest bytes the "
             "kernel must move over the device time; % copy BW compares it with a "
             "device-to-device copy measured in the same environment. Workloads with a "
             f"write-up of their own ({', '.join(v.TITLE for v in views())}) are on the "
             '<a href="writeups.html">write-up tables</a> page.</p>']
    writeups = ["<h1>Write-up tables</h1>", NAV,
                "<p>Each workload's summary in the shape of the write-up it grew from, for "
                "each environment's newest commit. A row in red failed, or failed its quality "
                "gate.</p>",
                *[f"<p>{html.escape(v.TITLE)}: {html.escape(v.NOTE)}</p>" for v in views()
                  if getattr(v, "NOTE", "")]]
    env_groups = latest_commit_rows(rows)
    overview.write(env_groups, out_dir, baseline_for or (lambda workload, device: "eager"),
                   gate, ch)
    names = short_env_names(env_groups)
    for key, env_rows in sorted(env_groups.items()):
        heading = _env_heading(env_rows, names[key])
        body = [[cell(d.get(c), k) for c, k in SPEEDUP_COLUMNS]
                for d in speedup_rows(env_rows, bytes_moved)]
        if body:
            parts += [heading, html_table(SPEEDUP_HEADERS, body)]
        tables = [t for view in views() for t in view.tables(env_rows)]
        if tables:
            writeups.append(heading)
        for table in tables:
            writeups.append(f"<h4>{html.escape(table.title)}</h4>")
            writeups.append(html_table(table.headers, table.rows, table.row_classes))
    out = out_dir / "index.html"
    out.write_text(page("kernelwatch", parts))
    (out_dir / "writeups.html").write_text(page("kernelwatch: write-up tables", writeups))
    regressions.write(Path(html_dir), ch,
                      "kernelwatch: change vs previous commit, newest first (flagged: "
                      "significant on the samples and beyond the series' threshold from the "
                      f"fidelity page, else {detect.DEFAULT_FACTOR - 1:.0%}; launch: a device "
                      "time that moved with autotuning's launch of the same kernels, not "
                      "counted)")
    roofline.write(env_groups, out_dir, bytes_moved or (lambda b, p: None),
                   flops or (lambda b, p: None), reference_for or (lambda b: None))
    (out_dir / "fidelity.html").write_text(page("kernelwatch: fidelity",
                                                 _fidelity_parts(fidelity or {})))
    if baseline_for:
        speedups.write(rows, out_dir, baseline_for, gate, baseline_once=env_key is not None)
        break_even.write(rows, out_dir, baseline_for, commit_order)
    torch_versions.write(rows, out_dir)
    outcome_view.write(rows, out_dir, commit_subjects)
    return out


def _fidelity_parts(fidelity: FidelityTables) -> list[str]:
    parts = ["<h1>kernelwatch: how far each benchmark can be trusted</h1>",
             '<p><a href="index.html">speedups and changes</a></p>',
             "<p>Per machine and timed series, from <code>kernelwatch fidelity</code>: the "
             "same commit measured in fresh processes (A/A) and with a known slowdown "
             "injected into the measuring core (A/B). The threshold is what the change "
             "table and <code>kernelwatch compare</code> use for that series; "
             "asv's fixed 1.10 is beside it.</p>"]
    if not fidelity:
        parts.append("<p>No fidelity runs yet: <code>kernelwatch fidelity</code>.</p>")
    for machine, (env, headers, body, note) in sorted(fidelity.items()):
        facts = ", ".join(f"{k}={v}" for k, v in sorted(env.items())
                          if k in ("cpu", "gpu", "driver", "torch", "cuda", "num_cpu",
                                   "threads"))
        parts += [f"<h2>{html.escape(machine)}</h2><p class=env>{html.escape(facts)}</p>",
                  html_table(headers, body), f"<p>{html.escape(note)}</p>"]
    return parts
