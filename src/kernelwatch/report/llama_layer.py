"""The Llama layer table, in the shape of the surgical RoPE compile write-up's
production table: per layer shape, sequence length, backend and pass, each variant's time
(device and caller), speedup over eager, the share of time in the surgically compiled region
(the write-up's "tensor ops %"), its error against eager and float64, and compile cost, beside
the write-up's surgical figures.
"""

from __future__ import annotations

from kernelwatch.report import Table, case_metrics, clocks
from kernelwatch.results.rows import Row
from kernelwatch.workloads.llama_layer import spec as llama_layer

PREFIX = "llama_layer."
TITLE = "Llama layer"
TRACKS = {"track_time": "time", "track_caller_time": "caller_time",
          "track_compiled_share": "share", "track_rel_l2_vs_eager": "vs_eager",
          "track_max_abs_vs_eager": "max_abs_vs_eager",
          "track_rel_l2_vs_float64": "vs_float64",
          "track_grad_rel_l2_vs_float64": "grad_vs_float64",
          "track_cold_compile": "cold_compile", "track_recompiles": "recompiles",
          "track_graph_breaks": "graph_breaks",
          "track_peak_cuda_allocated": "peak_cuda", "track_peak_rss": "peak_rss",
          "track_device_check": "check"}
HEADERS = ["variant", "ms", "ms (caller)", "speedup", "speedup (caller)", "write-up",
           "compiled share", "rel. L2 vs eager", "max |diff| vs eager", "rel. L2 vs fp64",
           "grad rel. L2 vs fp64", "cold compile s", "recompiles", "peak MB", "device clock",
           "check"]

Metrics = dict[str, float | str]


def _num(v) -> bool:
    return isinstance(v, float | int) and not isinstance(v, bool)


def writeup(shape: str, variant: str) -> str:
    """The write-up's surgical speedup and tensor-ops share for this shape (TE FP8, H100)."""
    if variant != "surgical" or shape not in llama_layer.WRITEUP:
        return ""
    speedup, share = llama_layer.WRITEUP[shape]
    return f"{speedup:.3f}x ({share:.0%} tensor ops; TE FP8, H100 PCIe)"


def rows_for(shape: str, by_variant: dict[str, Metrics], backend: str = "torch") -> list[dict]:
    eager = by_variant.get("eager", {})
    order = {s: i for i, s in enumerate(llama_layer.VARIANTS)}
    out = []
    for variant in sorted(by_variant, key=lambda s: order.get(s, len(order))):
        m = by_variant[variant]
        row: dict = {"variant": variant, "failed": "failed" in m.values(), **m}
        for clock in ("time", "caller_time"):
            t, base = m.get(clock), eager.get(clock)
            row[f"speedup_{clock}"] = base / t if _num(t) and _num(base) and t else None
        row["peak"] = m.get("peak_cuda", m.get("peak_rss"))
        gate = m.get("vs_eager")
        row["gate"] = (llama_layer.quality_gate("track_rel_l2_vs_eager", {"backend": backend},
                                                 gate)
                       if _num(gate) else None)
        row["writeup"] = writeup(shape, variant)
        out.append(row)
    return out


def cells(row: dict) -> list[str]:
    def f(key, fmt):
        v = row.get(key)
        return "n/a" if v is None else v if isinstance(v, str) else fmt(v)

    ms = lambda v: f"{v * 1e3:.4g}"  # noqa: E731
    x = lambda v: f"{v:.2f}x"  # noqa: E731
    e = lambda v: f"{v:.2g}"  # noqa: E731
    return [row["variant"], f("time", ms), f("caller_time", ms), f("speedup_time", x),
            f("speedup_caller_time", x), row["writeup"], f("share", lambda v: f"{v:.1%}"),
            f("vs_eager", e) + (f" ({row['gate']})" if row["gate"] else ""),
            f("max_abs_vs_eager", e), f("vs_float64", e), f("grad_vs_float64", e),
            f("cold_compile", lambda v: f"{v:.3g}"), f("recompiles", lambda v: f"{v:.0f}"),
            f("peak", lambda v: f"{v / 1e6:.0f}"), row.get("clock", ""),
            row.get("check_text", "")]


def summary(env_rows: list[Row]) -> dict[tuple, dict[str, Metrics]]:
    """{(shape, seq_len, backend, pass): {variant: metrics}} from one environment's rows."""
    return case_metrics(env_rows, PREFIX, TRACKS, ("shape", "seq_len", "backend", "pass"))


def make_tables(cases: dict[tuple, dict[str, Metrics]],
                labels: dict[tuple, str] | None = None) -> list[Table]:
    shapes = list(llama_layer.SHAPES)
    tables = []
    for (shape, seq_len, backend, pass_), by_variant in sorted(
            cases.items(), key=lambda kv: (shapes.index(kv[0][0]) if kv[0][0] in shapes
                                           else len(shapes), int(kv[0][1]), kv[0][2:])):
        rows = rows_for(shape, by_variant, backend)
        for row in rows:
            params = {"shape": shape, "seq_len": seq_len, "backend": backend, "pass": pass_,
                      "variant": row["variant"]}
            row["clock"] = (labels or {}).get(tuple(sorted(params.items())), "")
            row["check_text"] = clocks.check_text(row.get("check"), row.get("time"),
                                                  row.get("caller_time"),
                                                  gpu=row["clock"] != "host clock")
        batch = llama_layer.SHAPES[shape].batch if shape in llama_layer.SHAPES else "?"
        tables.append(Table(
            f"Llama layer {shape} (batch {batch}, sequence {seq_len}), {backend} linears, "
            f"{pass_}: ms per call from device time and from the caller's; speedup vs eager; "
            "compiled share = time in RoPE + reshapes (profiler); errors of the output (and "
            "of the gradients) vs eager and vs a float64 layer",
            HEADERS, [cells(r) for r in rows],
            ["worse" if r["failed"] or r["gate"] else "" for r in rows]))
    return tables


def tables(env_rows: list[Row]) -> list[Table]:
    return make_tables(summary(env_rows),
                       clocks.clock_labels(env_rows, PREFIX, llama_layer.device_method_for))
