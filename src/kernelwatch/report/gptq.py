"""The GPTQ summary, in the shape of the GPTQ torch.compile write-up's table:
first run, warm average, stddev and CV, the caller's time per call (host clock, beside the
warm average's CUDA events), on a GPU the GPU's busy time in the call, compile overhead,
speedup, peak memory, graph breaks, per layer type, plus the decoder layer (the sum over its
linears), and the quality columns that keep a fast-but-wrong variant visible.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from kernelwatch.report import Table
from kernelwatch.report.format import fmt_seconds
from kernelwatch.results.rows import Row
from kernelwatch.workloads.gptq import spec as gptq

PREFIX = "gptq."
TITLE = "GPTQ"
# What the table's columns mean, for the write-up page.
NOTE = ("first run is the first quantization in a fresh process with fresh compile caches; "
        "warm avg and stddev are over the steady samples, caller is the same call on the host "
        "clock; on a GPU warm avg is the call's latency there (CUDA events: the column loop "
        "runs from the host, and the GPU's waits for it count) and GPU busy the GPU's own work "
        "in the call (its kernels' busy time, from the profiler); compile OH is first run "
        "minus warm avg; speedup is against eager at the same block size (else at 128); a "
        "variant whose output error exceeds eager's by more than the stated tolerance is "
        "marked WORSE.")
# The quality gate a speedup must pass (workloads.gptq.quality_gate), in words.
GATE = "output error worse than eager's"
TIME = "gptq.GptqTime.track_time"
CALLER = "gptq.GptqTime.track_caller_time"
GPU_BUSY = "gptq.GptqKernelTime.track_kernel_time"
FIRST_RUN = "gptq.GptqFirstRun.track_first_run"
PEAK_CUDA = "gptq.GptqCudaMemory.track_peak_cuda_allocated"
PEAK_RSS = "gptq.GptqMemory.track_peak_rss"
GRAPH_BREAKS = "gptq.GptqCompile.track_graph_breaks"
RECOMPILES = "gptq.GptqCompile.track_recompiles"
IDENTICAL = "gptq.GptqAccuracy.track_identical_codes"
OUTPUT_ERROR = "gptq.GptqAccuracy.track_output_error"
WORSE = "gptq.GptqAccuracy.track_worse_than_eager"
BASELINE_BLOCKSIZE = "128"  # upstream's default block: eager there is the reference speed
DECODER_LAYER = "decoder layer (sum)"

HEADERS = ["layer", "variant", "block", "first run", "warm avg", "std (CV)", "caller",
           "GPU busy", "compile OH",
           "speedup", "peak mem", "graph breaks", "recompiles", "codes = eager",
           "out error", "worse than eager"]


def _compiled(variant: str) -> bool:
    declared = gptq.VARIANTS.get(variant)
    return declared is not None and declared.compiled


def _warm(row: Row) -> tuple[float, float | None]:
    """(mean, stddev) of the recorded samples; (asv's median, None) without samples."""
    if row.samples and len(row.samples) >= 2:
        return statistics.fmean(row.samples), statistics.stdev(row.samples)
    return row.median, None


FAILED = "failed"  # a measurement recorded as failed (timed out, out of memory, error)


def _num(v: object) -> bool:
    return isinstance(v, int | float)


def summary(env_rows: list[Row]) -> dict[tuple[str, str], list[dict]]:
    """{(model, scheme): rows} for one environment's newest commit. Each row is a dict with
    the columns of HEADERS: a number, FAILED where the measurement failed (a compile over its
    budget), or None where it was not measured. A case with any measurement has a row."""
    by_case: dict[tuple, dict[str, Row]] = defaultdict(dict)
    for r in env_rows:
        if r.benchmark.startswith(PREFIX) and "shape" in r.params and (
                r.value is not None or r.failed):
            p = r.params
            by_case[(p["shape"], p["scheme"], p["blocksize"], p["variant"])][r.benchmark] = r
    eager: dict[tuple, dict[str, float]] = {}
    for (shape, scheme, block, variant), m in by_case.items():
        if variant == "eager" and TIME in m and m[TIME].value is not None:
            eager.setdefault((shape, scheme), {})[block] = _warm(m[TIME])[0]

    def value(m: dict[str, Row], key: str) -> float | str | None:
        if key not in m:
            return None
        return FAILED if m[key].failed else m[key].value

    tables: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for (shape, scheme, block, variant), m in sorted(
            by_case.items(), key=lambda kv: (*kv[0][:2], int(kv[0][2]), kv[0][3])):
        model, _, layer = shape.partition("/")
        time = value(m, TIME)
        mean, std = _warm(m[TIME]) if _num(time) else (time, None)
        base = eager.get((shape, scheme), {})
        base_t = base.get(block, base.get(BASELINE_BLOCKSIZE))
        first = value(m, FIRST_RUN)
        peak = value(m, PEAK_CUDA) if PEAK_CUDA in m else value(m, PEAK_RSS)
        tables[(model, scheme)].append({
            "layer": layer, "variant": variant, "block": block, "first run": first,
            "warm avg": mean, "stddev": std, "caller": value(m, CALLER),
            "GPU busy": value(m, GPU_BUSY),
            # A one-time cost of compiling: none for a variant that does not compile.
            "compile OH": (first - mean if _num(first) and _num(mean)
                           and _compiled(variant) else None),
            "speedup": base_t / mean if base_t and _num(mean) and mean else None,
            "peak mem": peak,
            "graph breaks": _int(value(m, GRAPH_BREAKS)),
            "recompiles": _int(value(m, RECOMPILES)),
            "codes = eager": value(m, IDENTICAL), "output error": value(m, OUTPUT_ERROR),
            "worse than eager": _int(value(m, WORSE)),
        })
    for rows in tables.values():
        rows.extend(_decoder_layer_rows(rows))
    return dict(tables)


def _int(v: float | str | None) -> int | str | None:
    return int(v) if _num(v) else v


def _decoder_layer_rows(rows: list[dict]) -> list[dict]:
    """Per (variant, block): the sum over the model's linears, when every one was measured."""
    layers = {r["layer"] for r in rows}
    if len(layers) < 2:
        return []
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if _num(r["warm avg"]):
            groups[(r["variant"], r["block"])].append(r)
    eager = {}
    for (variant, block), rs in groups.items():
        if variant == "eager" and len(rs) == len(layers):
            eager[block] = sum(r["warm avg"] for r in rs)
    out = []
    for (variant, block), rs in sorted(groups.items()):
        if len(rs) != len(layers):
            continue
        total = sum(r["warm avg"] for r in rs)
        firsts = [r["first run"] if _num(r["first run"]) else None for r in rs]
        stds = [r["stddev"] for r in rs]
        base = eager.get(block, eager.get(BASELINE_BLOCKSIZE))
        first = sum(firsts) if None not in firsts else None
        out.append({
            "layer": DECODER_LAYER, "variant": variant, "block": block, "first run": first,
            "warm avg": total,
            "caller": _sum_or_none(r["caller"] for r in rs),
            "GPU busy": _sum_or_none(r["GPU busy"] for r in rs),
            # Layers are quantized one after another: variances add.
            "stddev": math.sqrt(sum(s * s for s in stds)) if None not in stds else None,
            "compile OH": (first - total if first is not None
                           and _compiled(variant) else None),
            "speedup": base / total if base else None,
            "peak mem": max((r["peak mem"] for r in rs if _num(r["peak mem"])), default=None),
            "graph breaks": _sum_or_none(r["graph breaks"] for r in rs),
            "recompiles": _sum_or_none(r["recompiles"] for r in rs),
            "codes = eager": None, "output error": None,
            "worse than eager": _sum_or_none(r["worse than eager"] for r in rs),
        })
    return out


def _sum_or_none(values) -> int | None:
    values = list(values)
    return sum(values) if all(_num(v) for v in values) else None


def cells(row: dict) -> list[str]:
    """One summary row as text cells, in HEADERS order."""
    def na(v, f):
        return "n/a" if v is None else FAILED if v == FAILED else f(v)

    std = row["stddev"]
    cv = f" ({100 * std / row['warm avg']:.1f}%)" if std is not None and _num(row["warm avg"]) \
        and row["warm avg"] else ""
    return [
        row["layer"], row["variant"], row["block"], na(row["first run"], fmt_seconds),
        na(row["warm avg"], fmt_seconds), na(std, fmt_seconds) + cv,
        na(row["caller"], fmt_seconds), na(row["GPU busy"], fmt_seconds),
        na(row["compile OH"], fmt_seconds),
        na(row["speedup"], lambda v: f"{v:.2f}x"),
        na(row["peak mem"], lambda v: f"{v / 2**30:.2f} GiB"), na(row["graph breaks"], str),
        na(row["recompiles"], str), na(row["codes = eager"], lambda v: f"{v:.4f}"),
        na(row["output error"], lambda v: f"{v:.4g}"),
        na(row["worse than eager"], lambda v: "WORSE" if v else "no"),
    ]


def tables(env_rows: list[Row]) -> list[Table]:
    """The summary of each (model, scheme) measured in this environment's newest commit; the
    GPU busy column only where a row has it (a GPU's figure, and not every GPU run takes
    the kernel-time family)."""
    out = []
    for (model, scheme), rows in sorted(summary(env_rows).items()):
        keep = [i for i, h in enumerate(HEADERS)
                if h != "GPU busy" or any(r["GPU busy"] is not None for r in rows)]
        out.append(Table(f"GPTQ {model}, {scheme}: per layer type and per decoder layer",
                         [HEADERS[i] for i in keep],
                         [[c[i] for i in keep] for c in map(cells, rows)],
                         ["worse" if r["worse than eager"] else "" for r in rows]))
    return out
