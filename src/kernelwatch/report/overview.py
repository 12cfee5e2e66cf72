"""The overview page, the site's front door, in the TorchInductor dashboard's manner: per
machine and environment (named by what differs between them, not by asv's hash), per
workload, each variant's geomean speedup over its baseline, its quality gates, its mean cold
compile and its peak memory against the baseline's; and a heatmap (variant x case) of
speedups in which the series that changed in their newest commit are marked and linked to
their history on asv's graph page. Plain HTML and CSS: it opens offline.
"""

from __future__ import annotations

import html
import math
import statistics
from collections import defaultdict
from pathlib import Path

from kernelwatch.regression import detect
from kernelwatch.report import speedups
from kernelwatch.report.format import NAV, html_table, page, short_env_names
from kernelwatch.results.rows import Row

COLD_COMPILE = "track_cold_compile"
PEAK_MEMORY = ("track_peak_cuda_allocated", "track_peak_rss")
# The short names of environments (what differs between them): format's, named here too.
env_names = short_env_names


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


def _case_label(r: Row) -> str:
    return ", ".join(v for k, v in r.params.items() if k != "variant")


def workload_summary(env_rows: list[Row], baseline_for: speedups.BaselineLookup,
                     gate: speedups.GateLookup | None) -> dict[str, dict]:
    """{workload: {"baseline", "variants": {variant: figures}, "cells": {(variant, case):
    (speedup, benchmark, params)}}} of one environment's newest rows."""
    failures = speedups.gate_failures(env_rows, gate)
    failed_cases = defaultdict(set)
    for (_m, _e, _c, workload, params), _reason in failures.items():
        p = dict(params)
        failed_cases[(workload, p.get("variant"))].add(
            tuple((k, v) for k, v in sorted(p.items()) if k != "variant"))
    timed = [r for r in env_rows if r.track in speedups.PRIMARY_TRACKS
             and "variant" in r.params and r.median]
    out: dict[str, dict] = {}
    for r in timed:
        workload = r.workload
        entry = out.setdefault(workload, {"baseline": baseline_for(workload, r.device_type),
                                          "times": {}, "cells": {}})
        entry["times"][(r.params["variant"], r.benchmark, r.case)] = r
    for workload, entry in out.items():
        base = entry["baseline"]
        per_variant: dict[str, dict] = defaultdict(lambda: {"speedups": [], "cases": 0})
        for (variant, bench, case), r in entry["times"].items():
            b = entry["times"].get((base, bench, case))
            if b is None:
                continue
            s = b.median / r.median
            per_variant[variant]["speedups"].append(s)
            entry["cells"][(variant, _case_label(r))] = (s, r.benchmark, r.params)
        entry["variants"] = {}
        for variant, v in sorted(per_variant.items()):
            failed = failed_cases.get((workload, variant), set())
            entry["variants"][variant] = {
                "geomean": _geomean(v["speedups"]), "cases": len(v["speedups"]),
                "gate_failures": len(failed),
                "cold_compile": _mean_track(env_rows, workload, variant, COLD_COMPILE),
                "memory_ratio": _memory_ratio(env_rows, workload, variant, base)}
    return out


def _mean_track(env_rows: list[Row], workload: str, variant: str, track: str) -> float | None:
    values = [r.median for r in env_rows if r.benchmark.startswith(f"{workload}.")
              and r.benchmark.endswith(f".{track}") and r.params.get("variant") == variant
              and r.median]
    return statistics.fmean(values) if values else None


def _memory_ratio(env_rows: list[Row], workload: str, variant: str,
                  baseline: str) -> float | None:
    """Geomean over cases of the variant's peak memory over the baseline's (the first
    memory track recorded: CUDA allocated on a GPU, RSS on a CPU)."""
    for track in PEAK_MEMORY:
        by_case: dict[tuple, dict[str, float]] = defaultdict(dict)
        for r in env_rows:
            if (r.benchmark.startswith(f"{workload}.") and r.benchmark.endswith(f".{track}")
                    and r.median and "variant" in r.params):
                by_case[(r.benchmark, r.case)][r.params["variant"]] = r.median
        ratios = [c[variant] / c[baseline] for c in by_case.values()
                  if variant in c and baseline in c and c[baseline]]
        if ratios:
            return _geomean(ratios)
    return None


def _heat(speedup: float) -> str:
    """A background colour: green above 1x, red below, stronger with the log of the ratio."""
    strength = min(1.0, abs(math.log2(speedup)) / 3)
    light = int(255 - 120 * strength)
    return (f"rgb({light},255,{light})" if speedup >= 1 else f"rgb(255,{light},{light})")


def _fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "n/a"
    return {"x": f"{v:.2f}x", "s": f"{v:.3g} s"}.get(kind, f"{v:.3g}")


def heatmap(entry: dict, machine: str, changed: set[tuple]) -> str:
    """Variant rows x case columns of speedups; a changed series is outlined and links to
    its graph."""
    variants = sorted({v for v, _ in entry["cells"]})
    cases = sorted({c for _, c in entry["cells"]})
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cases)
    rows = []
    for v in variants:
        tds = []
        for c in cases:
            cell = entry["cells"].get((v, c))
            if cell is None:
                tds.append("<td></td>")
                continue
            s, bench, params = cell
            key = (bench, tuple(sorted(params.items())))
            mark = key in changed
            href = f"../index.html#{bench}?machine={machine}"
            text = f"{s:.2f}x" + (" &#9650;" if mark else "")
            style = f"background:{_heat(s)}" + (";outline:3px solid #c60" if mark else "")
            tds.append(f'<td class="heat{" changed" if mark else ""}" style="{style}">'
                       f'<a href="{html.escape(href)}">{text}</a></td>')
        rows.append(f"<tr><th>{html.escape(v)}</th>{''.join(tds)}</tr>")
    return (f'<table class="heatmap"><thead><tr><th>variant \\ case</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def write(env_groups: dict[tuple[str, str], list[Row]], out_dir: Path,
          baseline_for: speedups.BaselineLookup, gate: speedups.GateLookup | None,
          ch: list[dict]) -> Path:
    """html/kernelwatch/overview.html."""
    changed = defaultdict(set)
    for c in ch:
        if c["flag"] and c["flag"] != detect.LAUNCH:
            changed[(c["machine"], c["env"])].add(
                (c["benchmark"], tuple(sorted(c.get("params_dict", {}).items()))))
    names = env_names(env_groups)
    parts = ["<h1>kernelwatch: overview</h1>", NAV,
             "<p>Per environment (named by what differs between them) and workload: each "
             "variant's geometric-mean speedup over its baseline across the cases measured "
             "at the newest commit, how many cases failed its quality gate, its mean cold "
             "compile and its peak memory against the baseline's. The heatmap shows each "
             "case; &#9650; and an outline mark a series that changed significantly in its "
             "newest commit (the regressions page has the figures); each cell links to the "
             "series' history.</p>"]
    if not env_groups:
        parts.append("<p>No results yet: <code>kernelwatch run --quick</code>.</p>")
    for key, env_rows in sorted(env_groups.items(), key=lambda kv: names[kv[0]]):
        summary = workload_summary(env_rows, baseline_for, gate)
        if not summary:
            continue
        parts.append(f"<h2>{html.escape(names[key])}</h2>")
        for workload, entry in sorted(summary.items()):
            if not entry["variants"]:
                continue
            body = [[v, _fmt(f["geomean"], "x"), str(f["cases"]),
                     "passed" if not f["gate_failures"] else
                     f"failed in {f['gate_failures']} case(s)",
                     _fmt(f["cold_compile"], "s"), _fmt(f["memory_ratio"], "x")]
                    for v, f in entry["variants"].items()]
            classes = ["worse" if f["gate_failures"] else "" for f in entry["variants"].values()]
            parts += [f"<h3>{html.escape(workload)} (vs {html.escape(entry['baseline'])})</h3>",
                      html_table(["variant", "geomean speedup", "cases", "quality gate",
                                  "mean cold compile", "peak memory vs baseline"],
                                 body, classes),
                      heatmap(entry, key[0], changed[key])]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "overview.html"
    path.write_text(page("kernelwatch: overview", parts))
    return path
