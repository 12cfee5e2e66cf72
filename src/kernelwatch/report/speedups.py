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

from kernelwatch.report import html_table
from kernelwatch.report.results import Row

# The time a workload's speedup is of: its device time (or, for generation, the decode step).
PRIMARY_TRACKS = ("track_time", "track_decode_time")
# (workload, "cpu" or "cuda") -> the variant the others are measured against.
BaselineLookup = Callable[[str, str], str]


@dataclass
class Series:
    machine: str
    benchmark: str
    case: tuple[tuple[str, str], ...]  # the parameters other than variant
    baseline: str
    # (variant, torch) -> [(commit, date, speedup, variant's median)], oldest first
    lines: dict[tuple[str, str], list[tuple[str, int, float, float]]]


def series(rows: list[Row], baseline_for: BaselineLookup) -> list[Series]:
    """Speedup over commits of each timed case (workload primary track) per machine."""
    timed = [r for r in rows if r.benchmark.rsplit(".", 1)[-1] in PRIMARY_TRACKS
             and "variant" in r.params and r.median]
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in timed:
        groups[(r.machine, r.benchmark, r.case)].append(r)
    out = []
    for (machine, bench, case), rs in sorted(groups.items()):
        baseline = baseline_for(bench.split(".")[0], rs[0].device_type)
        base = {(r.env_name, r.commit): r.median for r in rs
                if r.params["variant"] == baseline}
        lines: dict[tuple[str, str], list] = defaultdict(list)
        for r in sorted(rs, key=lambda r: r.date):
            b = base.get((r.env_name, r.commit))
            if b and r.params["variant"] != baseline:
                torch = r.env.get("torch", "?")
                lines[(r.params["variant"], torch)].append((r.commit, r.date, b / r.median,
                                                            r.median))
        if lines:
            out.append(Series(machine, bench, case, baseline, dict(sorted(lines.items()))))
    return out


def _figure_html(s: Series, div_id: str) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    commits = sorted({(d, c) for pts in s.lines.values() for c, d, _, _ in pts})
    order = [c[:8] for _, c in commits]
    for (variant, torch), pts in s.lines.items():
        fig.add_trace(go.Scatter(x=[c[:8] for c, _, _, _ in pts], y=[x for _, _, x, _ in pts],
                                 mode="lines+markers", name=f"{variant} · torch {torch}"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="gray")
    fig.update_layout(height=320, margin={"l": 50, "r": 20, "t": 30, "b": 40},
                      yaxis_title=f"speedup vs {s.baseline}", xaxis_title="commit",
                      xaxis={"type": "category", "categoryorder": "array",
                             "categoryarray": order},
                      title={"text": _title(s), "font": {"size": 13}})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def _title(s: Series) -> str:
    return f"{s.benchmark} ({', '.join(v for _, v in s.case)})"


def _table(s: Series, fmt_seconds: Callable[[float], str]) -> str:
    body = [[variant, torch, pts[-1][0][:8], fmt_seconds(pts[-1][3]), f"{pts[-1][2]:.2f}x"]
            for (variant, torch), pts in s.lines.items()]
    return html_table(["variant", "torch", "newest commit", "time",
                       f"speedup vs {s.baseline}"], body)


def write(rows: list[Row], out_dir: Path, baseline_for: BaselineLookup,
          fmt_seconds: Callable[[float], str], page: Callable[[str, list[str]], str]) -> Path:
    """html/kernelwatch/speedups.html (and plotly.min.js beside it)."""
    from plotly.offline import get_plotlyjs

    all_series = series(rows, baseline_for)
    parts = ["<h1>Speedups over commits</h1>",
             '<p><a href="index.html">speedups and changes</a> &middot; '
             '<a href="fidelity.html">fidelity</a> &middot; <a href="../index.html">asv '
             "history</a></p>",
             "<p>Each variant's time against its workload's baseline variant (eager; GPT-2: "
             "fp32 on a CPU, bf16 on a GPU) in the same environment and commit: device time "
             "for kernels, the decode step for generation. One line per variant and torch "
             "version; the table is the newest commit of each line.</p>"]
    if not all_series:
        parts.append("<p>No variant has a baseline measured beside it yet.</p>")
    machine = None
    for i, s in enumerate(all_series):
        if s.machine != machine:
            machine = s.machine
            parts.append(f"<h2>{html.escape(machine)}</h2>")
        parts += [f"<h3>{html.escape(_title(s))}</h3>", _table(s, fmt_seconds),
                  _figure_html(s, f"speedup-{i}")]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plotly.min.js").write_text(get_plotlyjs())
    head_script = '<script src="plotly.min.js"></script>'
    path = out_dir / "speedups.html"
    path.write_text(page("kernelwatch: speedups", [head_script, *parts]))
    return path
