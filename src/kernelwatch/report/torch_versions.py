"""The versions page: the same commit measured under each version of a library in the matrix
(torch, or any library `run --versions DIST=V1,V2` put there), side by side, with the ratio of
the newest version to the oldest (above 1: the newer one is slower), judged by the regression
check on the samples. One table per library and machine, for its newest commit measured under
two or more versions. (The file is still torch.html, where the site links it.)"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from packaging.version import InvalidVersion, Version

from kernelwatch.regression import detect
from kernelwatch.report.format import NAV, fmt_seconds, html_table, page
from kernelwatch.results.rows import Row


def _version(v: str) -> tuple:
    try:
        return (0, Version(v))
    except InvalidVersion:
        return (1, v)


def _label(value: object) -> str:
    """A matrix value as a version: pip flags dropped ("0.14.0 --no-deps" -> 0.14.0)."""
    text = str(value)
    return text.split()[0] if text.split() else text


def libraries(rows: list[Row]) -> list[str]:
    """Environment parameters with two or more values at one (machine, commit): torch first,
    then the others by name."""
    seen: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in rows:
        if r.unit == "seconds" and r.median and not r.benchmark.startswith("environment."):
            for k, v in r.env.items():
                seen[(r.machine, r.commit, k)].add(_label(v))
    found = {k for (_, _, k), values in seen.items() if len(values) > 1}
    return sorted(found, key=lambda k: (k != "torch", k))


def side_by_side(rows: list[Row], library: str = "torch"
                 ) -> dict[str, tuple[str, list[str], list[dict]]]:
    """machine -> (commit, versions of `library` oldest first, one dict per timed series with
    its median per version and the newest/oldest ratio). A series is a benchmark, its
    parameters and the rest of its environment (another library's version)."""
    timed = [r for r in rows if r.unit == "seconds" and r.median
             and not r.benchmark.startswith("environment.")]
    by_machine_commit: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in timed:
        by_machine_commit[(r.machine, r.commit)].append(r)
    out: dict[str, tuple[str, list[str], list[dict]]] = {}
    for (machine, commit), rs in sorted(by_machine_commit.items(),
                                        key=lambda kv: max(r.date for r in kv[1])):
        versions = sorted({_label(r.env.get(library, "?")) for r in rs}, key=_version)
        if len(versions) < 2:
            continue
        series: dict[tuple, dict[str, Row]] = defaultdict(dict)
        for r in rs:
            rest = tuple(sorted((k, _label(v)) for k, v in r.env.items() if k != library))
            series[(r.benchmark, tuple(r.params.values()), rest)][
                _label(r.env.get(library, "?"))] = r
        table = []
        for (bench, params, _), by_version in sorted(series.items()):
            if len(by_version) < 2:
                continue
            known = [v for v in versions if v in by_version]
            first, last = by_version[known[0]], by_version[known[-1]]
            # The regression check itself (significance on the samples, beyond 1.10).
            change = detect.judge(bench, last.unit, first.samples or [first.median],
                                  last.samples or [last.median],
                                  versions=(first.version, last.version),
                                  processes=(first.processes, last.processes))
            table.append({"benchmark": bench, "params": ", ".join(params),
                          "medians": {v: r.median for v, r in by_version.items()},
                          "ratio": change.ratio, "flag": change.flag})
        if table:
            out[machine] = (commit, versions, table)  # later (newer) commits replace earlier
    return out


def write(rows: list[Row], out_dir: Path) -> Path:
    parts = ["<h1>Versions side by side</h1>", NAV,
             "<p>Per library and machine, its newest commit measured under two or more "
             "versions of the library (torch from the matrix; others from <code>kernelwatch "
             "run --versions DIST=V1,V2</code>): each timed series' median per version, and "
             "newest / oldest (above 1.00: slower on the newer version), highlighted where "
             "asv's test on the samples finds it significant and beyond 1.10. Largest change "
             "first.</p>"]
    names = libraries(rows)
    if not names:
        parts.append("<p>No commit has been measured under two versions of a library yet "
                     "(<code>kernelwatch run</code> runs asv.conf.json's torch matrix; "
                     "<code>--versions DIST=V1,V2</code> any declared library's).</p>")
    for library in names:
        parts += _tables(library, side_by_side(rows, library))
    path = out_dir / "torch.html"
    path.write_text(page("kernelwatch: versions", parts))
    return path


def _tables(library: str, found: dict) -> list[str]:
    parts = []
    for machine, (commit, versions, table) in sorted(found.items()):
        head = ["benchmark", "parameters", *[f"{library} {v}" for v in versions],
                f"{versions[-1]} / {versions[0]}"]
        ordered = sorted(table, key=lambda t: -abs(t["ratio"] - 1))
        body = [[t["benchmark"], t["params"],
                 *[fmt_seconds(t["medians"][v]) if v in t["medians"] else "n/a"
                   for v in versions], f"{t['ratio']:.2f}"] for t in ordered]
        parts += [f"<h2>{html.escape(library)} &mdash; {html.escape(machine)} &mdash; commit "
                  f"<code>{html.escape(commit[:8])}</code></h2>",
                  html_table(head, body, [t["flag"] for t in ordered])]
    return parts
