"""The torch-versions page: the same commit measured under each torch version of the matrix,
side by side, with the ratio of the newest torch to the oldest (above 1: the newer torch is
slower). One table per machine, for its newest commit measured under two or more versions."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from packaging.version import InvalidVersion, Version

from kernelwatch import detect
from kernelwatch.report.format import NAV, fmt_seconds, html_table, page
from kernelwatch.results import Row


def _version(v: str) -> tuple:
    try:
        return (0, Version(v))
    except InvalidVersion:
        return (1, v)


def side_by_side(rows: list[Row]) -> dict[str, tuple[str, list[str], list[dict]]]:
    """machine -> (commit, torch versions oldest first, one dict per timed series with its
    median per version and the newest/oldest ratio)."""
    timed = [r for r in rows if r.unit == "seconds" and r.median
             and not r.benchmark.startswith("environment.")]
    by_machine_commit: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in timed:
        by_machine_commit[(r.machine, r.commit)].append(r)
    out: dict[str, tuple[str, list[str], list[dict]]] = {}
    for (machine, commit), rs in sorted(by_machine_commit.items(),
                                        key=lambda kv: max(r.date for r in kv[1])):
        versions = sorted({r.env.get("torch", "?") for r in rs}, key=_version)
        if len(versions) < 2:
            continue
        series: dict[tuple, dict[str, Row]] = defaultdict(dict)
        for r in rs:
            series[(r.benchmark, tuple(r.params.values()))][r.env.get("torch", "?")] = r
        table = []
        for (bench, params), by_version in sorted(series.items()):
            if len(by_version) < 2:
                continue
            known = [v for v in versions if v in by_version]
            first, last = by_version[known[0]], by_version[known[-1]]
            # The regression check itself (significance on the samples, beyond 1.10).
            change = detect.compare(first.samples or [first.median],
                                    last.samples or [last.median])
            table.append({"benchmark": bench, "params": ", ".join(params),
                          "medians": {v: r.median for v, r in by_version.items()},
                          "ratio": change.ratio, "flag": change.flag})
        if table:
            out[machine] = (commit, versions, table)  # later (newer) commits replace earlier
    return out


def write(rows: list[Row], out_dir: Path) -> Path:
    parts = ["<h1>Torch versions side by side</h1>", NAV,
             "<p>Per machine, its newest commit measured under two or more torch versions of "
             "the matrix: each timed series' median per version, and newest / oldest (above "
             "1.00: slower on the newer torch), highlighted where asv's test on the samples "
             "finds it significant and beyond 1.10. Largest change first.</p>"]
    found = side_by_side(rows)
    if not found:
        parts.append("<p>No commit has been measured under two torch versions yet "
                     "(<code>kernelwatch run</code> runs asv.conf.json's matrix).</p>")
    for machine, (commit, versions, table) in sorted(found.items()):
        head = ["benchmark", "parameters", *[f"torch {v}" for v in versions],
                f"{versions[-1]} / {versions[0]}"]
        ordered = sorted(table, key=lambda t: -abs(t["ratio"] - 1))
        body = [[t["benchmark"], t["params"],
                 *[fmt_seconds(t["medians"][v]) if v in t["medians"] else "n/a"
                   for v in versions], f"{t['ratio']:.2f}"] for t in ordered]
        parts += [f"<h2>{html.escape(machine)} &mdash; commit "
                  f"<code>{html.escape(commit[:8])}</code></h2>",
                  html_table(head, body, [t["flag"] for t in ordered])]
    path = out_dir / "torch.html"
    path.write_text(page("kernelwatch: torch versions", parts))
    return path
