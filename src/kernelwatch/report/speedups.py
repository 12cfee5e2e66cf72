"""The speedups page: every variant against its workload's baseline, per case, per torch
version, per machine; a table of the newest commit and a chart of the speedup over commits
(one line per variant and torch version).

Charts are plotly figures; plotly.js ships inside the plotly wheel and is written once beside
the page (html/kernelwatch/plotly.min.js), so the page needs no network.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernelwatch.report import views
from kernelwatch.report.format import NAV, fmt_seconds, html_table, page
from kernelwatch.results.rows import Row

# The time a workload's speedup is of: its device time (or, for generation, the decode step).
PRIMARY_TRACKS = ("track_time", "track_decode_time")
# (workload, "cpu" or "cuda") -> the variant the others are measured against.
BaselineLookup = Callable[[str, str], str]
# (benchmark, params, value) -> why a quality/accuracy result fails its gate, or None.
GateLookup = Callable[[str, dict, float], str | None]


@dataclass
class Series:
    machine: str
    benchmark: str
    case: tuple[tuple[str, str], ...]  # the parameters other than variant
    baseline: str
    # (variant, torch) -> [(commit, date, speedup, variant's median, failed gate or "")],
    # oldest first
    lines: dict[tuple[str, str], list[tuple[str, int, float, float, str]]]


def gate_failures(rows: list[Row], gate: GateLookup | None) -> dict[tuple, str]:
    """{(machine, env, commit, workload, params): reason} for every quality or accuracy
    result that fails its workload's gate."""
    out: dict[tuple, str] = {}
    for r in rows:
        if gate and r.value is not None and "variant" in r.params:
            reason = gate(r.benchmark, r.params, r.value)
            if reason:
                key = (r.machine, r.env_name, r.commit, r.workload,
                       tuple(sorted(r.params.items())))
                out[key] = reason
    return out


def series(rows: list[Row], baseline_for: BaselineLookup,
           gate: GateLookup | None = None, baseline_once: bool = False) -> list[Series]:
    """Speedup over commits of each timed case (workload primary track) per machine; each
    point carries the reason its variant failed a quality gate at that commit, if it did.
    `baseline_once`: a library's history, where the baseline is the project's own code,
    measured once: a commit without one is judged against the newest of its environment."""
    failures = gate_failures(rows, gate)
    timed = [r for r in rows if r.track in PRIMARY_TRACKS
             and "variant" in r.params and r.median]
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in timed:
        groups[(r.machine, r.benchmark, r.case)].append(r)
    out = []
    for (machine, bench, case), rs in sorted(groups.items()):
        baseline = baseline_for(bench.split(".")[0], rs[0].device_type)
        base = {(r.env_name, r.commit): r.median for r in rs
                if r.params["variant"] == baseline}
        newest = {r.env_name: r.median for r in sorted(rs, key=lambda r: r.date)
                  if r.params["variant"] == baseline} if baseline_once else {}
        lines: dict[tuple[str, str], list] = defaultdict(list)
        for r in sorted(rs, key=lambda r: r.date):
            b = base.get((r.env_name, r.commit)) or newest.get(r.env_name)
            if b and r.params["variant"] != baseline:
                torch = r.env.get("torch", "?")
                failed = failures.get((r.machine, r.env_name, r.commit, bench.split(".")[0],
                                       tuple(sorted(r.params.items()))), "")
                lines[(r.params["variant"], torch)].append((r.commit, r.date, b / r.median,
                                                            r.median, failed))
        if lines:
            out.append(Series(machine, bench, case, baseline, dict(sorted(lines.items()))))
    return out


def _figure_html(s: Series, div_id: str) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    commits = sorted({(p[1], p[0]) for pts in s.lines.values() for p in pts})
    order = [c[:8] for _, c in commits]
    for (variant, torch), pts in s.lines.items():
        # A point whose variant failed its quality gate is a red cross, and the line's name
        # says so: a speedup bought with wrong output is shown, not hidden.
        marked = any(p[4] for p in pts)
        fig.add_trace(go.Scatter(
            x=[p[0][:8] for p in pts], y=[p[2] for p in pts], mode="lines+markers",
            name=f"{variant} · torch {torch}" + (" (failed quality gate)" if marked else ""),
            text=[p[4] or "" for p in pts],
            marker={"symbol": ["x" if p[4] else "circle" for p in pts],
                    "size": [12 if p[4] else 6 for p in pts],
                    "line": {"color": ["red" if p[4] else "rgba(0,0,0,0)" for p in pts],
                             "width": 2}}))
    fig.add_hline(y=1.0, line_dash="dot", line_color="gray")
    fig.update_layout(height=320, margin={"l": 50, "r": 20, "t": 30, "b": 40},
                      yaxis_title=f"speedup vs {s.baseline}", xaxis_title="commit",
                      xaxis={"type": "category", "categoryorder": "array",
                             "categoryarray": order},
                      title={"text": _title(s), "font": {"size": 13}})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def _title(s: Series) -> str:
    return f"{s.benchmark} ({', '.join(v for _, v in s.case)})"


def _table(s: Series) -> str:
    body = [[variant, torch, pts[-1][0][:8], fmt_seconds(pts[-1][3]), f"{pts[-1][2]:.2f}x",
             f"FAILED: {pts[-1][4]}" if pts[-1][4] else "passed or not gated"]
            for (variant, torch), pts in s.lines.items()]
    classes = ["worse" if pts[-1][4] else "" for pts in s.lines.values()]
    return html_table(["variant", "torch", "newest commit", "time",
                       f"speedup vs {s.baseline}", "quality gate"], body, classes)


def write(rows: list[Row], out_dir: Path, baseline_for: BaselineLookup,
          gate: GateLookup | None = None, baseline_once: bool = False) -> Path:
    """html/kernelwatch/speedups.html (and plotly.min.js beside it)."""
    from plotly.offline import get_plotlyjs

    all_series = series(rows, baseline_for, gate, baseline_once)
    once = ("<p>A library's history: its variants at each of its commits against the "
            "project's own baseline, the same code at every commit, measured once per run "
            "(the newest measurement of each environment).</p>" if baseline_once else "")
    parts = ["<h1>Speedups over commits</h1>", NAV, once,
             "<p>Each variant's time against its workload's baseline variant (eager; GPT-2: "
             "fp32 on a CPU, bf16 on a GPU) in the same environment and commit: device time "
             "for kernels, the decode step for generation. One line per variant and torch "
             "version; the table is the newest commit of each line. A variant whose output "
             "failed its workload's quality or accuracy gate at a commit ("
             + "; ".join(f"{v.TITLE}: {v.GATE}" for v in views() if getattr(v, "GATE", ""))
             + ") is drawn as a red cross there and its row is marked.</p>"]
    if not all_series:
        parts.append("<p>No variant has a baseline measured beside it yet.</p>")
    machine = None
    for i, s in enumerate(all_series):
        if s.machine != machine:
            machine = s.machine
            parts.append(f"<h2>{html.escape(machine)}</h2>")
        parts += [f"<h3>{html.escape(_title(s))}</h3>", _table(s),
                  _figure_html(s, f"speedup-{i}")]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plotly.min.js").write_text(get_plotlyjs())
    head_script = '<script src="plotly.min.js"></script>'
    path = out_dir / "speedups.html"
    path.write_text(page("kernelwatch: speedups", parts, head=head_script))
    return path
