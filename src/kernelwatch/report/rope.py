"""The RoPE table: per shape, form and dtype, every variant's device time, achieved GB/s and
share of the environment's measured copy bandwidth (RoPE's floor: it must read and write q
and k once), best first, so the best kernel per shape is the first row. The surgical
compile write-up reported compiled RoPE at 2.79x eager; the aim for the best variant on a
Hopper GPU is 90% of copy bandwidth.
"""

from __future__ import annotations

from collections import defaultdict

from kernelwatch.report import Table, clocks, copy_bandwidth
from kernelwatch.report.format import fmt_seconds
from kernelwatch.results.rows import Row
from kernelwatch.workloads.rope import spec as rope

TITLE = "RoPE"
# The quality gate a speedup must pass (workloads.rope.quality_gate), in words.
GATE = "error vs float64 over its dtype's tolerance"

# No PREFIX: RoPE stays in the generic speedup table; this view adds the best-per-shape one.
TIME_BENCHMARK = "rope.RopeTime.track_time"
AIM_OF_COPY = 0.90
HEADERS = ["variant", "time", "vs eager", "GB/s", "% of copy BW", "caller time",
           "device clock", "check"]
# The reference kernel the others are read against ("compile reaches X% of it").
REFERENCE = "triton"


def best_rows(env_rows: list[Row]) -> dict[tuple, list[dict]]:
    """{(shape, form, dtype): [row per variant, fastest first]} from one environment."""
    bandwidth = copy_bandwidth(env_rows)
    caller = {(tuple(r.params.values())): r.median for r in env_rows
              if r.benchmark == "rope.RopeTime.track_caller_time" and r.median}
    checks = {tuple(r.params.values()): ("failed" if r.failed else r.value) for r in env_rows
              if r.benchmark == "rope.RopeDeviceCheck.track_device_check"
              and (r.value is not None or r.failed)}
    labels = clocks.clock_labels(env_rows, "rope.", rope.device_method_for)
    cases: dict[tuple, list[dict]] = defaultdict(list)
    for r in env_rows:
        if r.benchmark != TIME_BENCHMARK or not r.median:
            continue
        p = r.params
        nbytes = rope.bytes_for(p)
        cases[(p["shape"], p["form"], p["dtype"])].append({
            "variant": p["variant"], "time": r.median, "gbps": nbytes / r.median / 1e9,
            "of_copy": nbytes / r.median / bandwidth if bandwidth else None,
            "caller": caller.get(tuple(p.values())),
            "clock": labels.get(tuple(sorted(p.items())), ""),
            "check": clocks.check_text(checks.get(tuple(p.values())), r.median,
                                       caller.get(tuple(p.values())),
                                       gpu=r.device_type == "cuda")})
    for rows in cases.values():
        rows.sort(key=lambda row: row["time"])
        eager = next((row["time"] for row in rows if row["variant"] == "eager"), None)
        reference = next((row["time"] for row in rows if row["variant"] == REFERENCE), None)
        for row in rows:
            row["speedup"] = eager / row["time"] if eager else None
            row["of_reference"] = reference / row["time"] if reference else None
    return cases


def tables(env_rows: list[Row]) -> list[Table]:
    out = []
    for (shape, form, dtype), rows in sorted(best_rows(env_rows).items()):
        best = rows[0]
        share = (f", {best['of_copy']:.0%} of copy bandwidth (aim on a GPU: "
                 f"{AIM_OF_COPY:.0%})" if best["of_copy"] is not None else "")
        compiled = next((row for row in rows if row["variant"] == "compile"), None)
        if compiled and compiled["of_reference"] is not None:
            share += (f"; compile reaches {compiled['of_reference']:.0%} of the reference "
                      f"kernel ({REFERENCE})")

        def f(v, fmt):
            return "n/a" if v is None else fmt(v)

        out.append(Table(
            f"RoPE {shape} {form} {dtype}: best variant {best['variant']}{share}; device time, "
            "fastest first",
            HEADERS,
            [[row["variant"], fmt_seconds(row["time"]), f(row["speedup"], lambda v: f"{v:.2f}x"),
              f"{row['gbps']:.1f}", f(row["of_copy"], lambda v: f"{v:.1%}"),
              f(row["caller"], fmt_seconds), row["clock"], row["check"]] for row in rows],
            ["best"] + [""] * (len(rows) - 1)))
    return out
