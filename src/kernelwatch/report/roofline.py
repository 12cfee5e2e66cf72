"""The roofline page: how close each timed kernel is to the machine, from its device time.

    GB/s      = the fewest bytes the case must move (workload `bytes_for`) / device time;
    TFLOP/s   = its matmul FLOPs (workload `flops_for`) / device time;
    % of peak = against the same environment's measured ceilings: a device copy
                (environment.track_copy_seconds_per_gib) and a large matmul
                (environment.track_matmul_seconds_per_tflop), not a datasheet;
    floor     = the larger of bytes / copy bandwidth and FLOPs / matmul peak; time / floor
                says how far above it the kernel runs, and "bound" which ceiling is nearer;
    vs reference = the reference kernel's time over this one's, where the workload names a
                reference (its `REFERENCE` variant, the best kernel the project knows):
                "compile reaches 80% of the reference" on the same case and environment.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from kernelwatch.report import copy_bandwidth, machine_fact
from kernelwatch.report.format import NAV, fmt_seconds, html_table, page, short_env_names
from kernelwatch.results.rows import Row

MATMUL_KEY = "environment.Environment.track_matmul_seconds_per_tflop"
# Work lookups: (benchmark, params) -> bytes or FLOPs of one call, or None.
WorkLookup = Callable[[str, dict], int | None]
HEADERS = ["benchmark", "case", "device time", "GB/s", "% of copy BW", "TFLOP/s",
           "% of matmul peak", "bound", "time / floor", "vs reference"]
# Reference lookup: benchmark -> its workload's reference variant, or None where it names none.
ReferenceLookup = Callable[[str], str | None]


def ceilings(env_rows: list[Row]) -> tuple[float | None, float | None]:
    """(copy bytes/s, matmul FLOP/s) measured in this environment, where recorded."""
    mm = machine_fact(env_rows, MATMUL_KEY)
    return copy_bandwidth(env_rows), (1e12 / mm if mm else None)


def rows_of(env_rows: list[Row], bytes_for: WorkLookup, flops_for: WorkLookup,
            reference_for: ReferenceLookup = lambda benchmark: None) -> list[dict]:
    """One dict per timed case (track_time) whose workload says its bytes or FLOPs.
    `reference_for(benchmark)` names the workload's reference variant, or None."""
    bandwidth, peak = ceilings(env_rows)
    timed = {(r.benchmark, tuple(sorted(r.params.items()))): r.median for r in env_rows
             if r.benchmark.endswith(".track_time") and r.median}
    out = []
    for r in sorted(env_rows, key=lambda r: (r.benchmark, tuple(r.params.values()))):
        if not r.benchmark.endswith(".track_time") or not r.median or "variant" not in r.params:
            continue
        nbytes, flops = bytes_for(r.benchmark, r.params), flops_for(r.benchmark, r.params)
        if not (nbytes or flops):
            continue
        t = r.median
        row = {"benchmark": r.benchmark, "case": ", ".join(r.params.values()), "seconds": t,
               "gb_per_s": nbytes / t / 1e9 if nbytes else None,
               "tflops": flops / t / 1e12 if flops else None}
        row["pct_copy"] = 100 * nbytes / t / bandwidth if nbytes and bandwidth else None
        row["pct_peak"] = 100 * flops / t / peak if flops and peak else None
        floors = {"memory": nbytes / bandwidth if nbytes and bandwidth else 0.0,
                  "compute": flops / peak if flops and peak else 0.0}
        bound = max(floors, key=floors.get)
        row["bound"] = bound if floors[bound] else None
        row["over_floor"] = t / floors[bound] if floors[bound] else None
        reference = reference_for(r.benchmark)
        ref_t = timed.get((r.benchmark, tuple(sorted({**r.params, "variant": reference}.items()))))
        row["is_reference"] = reference is not None and r.params["variant"] == reference
        row["vs_reference"] = ref_t / t if reference and ref_t else None
        out.append(row)
    return out


def cells(row: dict) -> list[str]:
    def f(v, fmt):
        return "n/a" if v is None else fmt(v)

    return [row["benchmark"], row["case"], fmt_seconds(row["seconds"]),
            f(row["gb_per_s"], lambda v: f"{v:.3g}"), f(row["pct_copy"], lambda v: f"{v:.0f}%"),
            f(row["tflops"], lambda v: f"{v:.3g}"), f(row["pct_peak"], lambda v: f"{v:.0f}%"),
            row["bound"] or "n/a", f(row["over_floor"], lambda v: f"{v:.2f}x"),
            "the reference" if row.get("is_reference")
            else f(row.get("vs_reference"), lambda v: f"{v:.0%} of its speed")]


def write(env_groups: dict[tuple, list[Row]], out_dir: Path, bytes_for: WorkLookup,
          flops_for: WorkLookup, reference_for: ReferenceLookup = lambda benchmark: None) -> Path:
    """html/kernelwatch/roofline.html: one table per environment's newest commit."""
    parts = ["<h1>Roofline: how close each kernel is to the machine</h1>", NAV,
             "<p>From the device time (on a GPU: CUDA-graph replay). GB/s: the fewest bytes "
             "the case must move over its time; TFLOP/s: its matmul FLOPs over its time; "
             "each against the same environment's measured ceilings (a device copy, a large "
             "matmul: bf16 on a GPU, fp32 on the pinned CPU threads), not a datasheet. "
             "Floor: the larger of bytes / copy bandwidth and FLOPs / matmul peak. "
             "vs reference: where a workload has a reference kernel of its own (the best "
             "kernel the project knows for the case, marked \u201cthe reference\u201d), "
             "each variant's speed as a share of it on the same case.</p>"]
    any_rows = False
    names = short_env_names(env_groups)
    for key, env_rows in sorted(env_groups.items()):
        rows = rows_of(env_rows, bytes_for, flops_for, reference_for)
        if not rows:
            continue
        any_rows = True
        bandwidth, peak = ceilings(env_rows)
        facts = (f"copy {bandwidth / 1e9:.3g} GB/s" if bandwidth else "copy not measured") + (
            f", matmul {peak / 1e12:.3g} TFLOP/s" if peak else ", matmul not measured")
        parts.append(f"<h2>{html.escape(names[key])} "
                     f"({env_rows[0].device_type})</h2><p class=env>{html.escape(facts)}</p>")
        parts.append(html_table(HEADERS, [cells(r) for r in rows]))
    if not any_rows:
        parts.append("<p>No timed result whose workload states its bytes or FLOPs yet.</p>")
    path = out_dir / "roofline.html"
    path.write_text(page("kernelwatch: roofline", parts))
    return path
