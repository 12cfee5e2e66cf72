"""The GPT-2 table, in the shape of the GPT-2 XL CPU quantization write-up's:
variant, size on disk, tokens/s, total latency, TTFT, peak and p90 RSS, peak and p90 CPU,
plus what the write-up lacked: spread, agreement with the baseline, speedup, the decode rate
as a share of the memory-bandwidth bound, and the break-even of compiling.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from kernelwatch.report import Table, copy_bandwidth
from kernelwatch.results.rows import Row

PREFIX = "gpt2."
TITLE = "GPT-2"
DECODE = "gpt2.Gpt2Generate.track_decode_time"
TTFT = "gpt2.Gpt2Generate.track_ttft"
TOTAL = "gpt2.Gpt2Generate.track_total_time"
FIRST_RUN = "gpt2.Gpt2FirstRun.track_first_run"
SIZE = "gpt2.Gpt2Size.track_size_on_disk"
QUANTIZED = "gpt2.Gpt2Size.track_quantized_modules"
PEAK_RSS = "gpt2.Gpt2Memory.track_peak_rss"
P90_RSS = "gpt2.Gpt2Memory.track_p90_rss"
PEAK_CPU = "gpt2.Gpt2Memory.track_peak_cpu"
P90_CPU = "gpt2.Gpt2Memory.track_p90_cpu"
TOKEN_MATCH = "gpt2.Gpt2Accuracy.track_token_match"
MAX_LOGIT = "gpt2.Gpt2Accuracy.track_max_logit_diff"
BASELINES = ("fp32", "bf16")

HEADERS = ["variant", "size MB", "tok/s (IQR)", "speedup", "% of BW bound", "total s",
           "TTFT s", "peak RSS MB", "p90 RSS MB", "peak CPU %", "p90 CPU %", "token match",
           "max logit diff", "quantized modules", "first run s", "compile break-even"]


def _spread(row: Row | None) -> tuple[float, float, float] | None:
    """(median, lower quartile, upper quartile) of a row's samples."""
    if row is None or row.value is None:
        return None
    samples = row.samples or [row.value]
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q2, q1, q3


def _value(m: dict[str, Row], key: str) -> float | str | None:
    row = m.get(key)
    if row is None:
        return None
    return "failed" if row.failed else row.median


def summary(env_rows: list[Row]) -> dict[tuple, list[dict]]:
    """{(size, prompt tokens, new tokens, threads): one dict per variant}."""
    by_case: dict[tuple, dict[str, dict[str, Row]]] = defaultdict(lambda: defaultdict(dict))
    for r in env_rows:
        if r.benchmark.startswith(PREFIX) and "variant" in r.params and (
                r.value is not None or r.failed):
            p = r.params
            key = (p["size"], p["prompt_tokens"], p["new_tokens"], p["threads"])
            by_case[key][p["variant"]][r.benchmark] = r
    copy_bw = copy_bandwidth(env_rows)
    out: dict[tuple, list[dict]] = {}
    for key, variants in sorted(by_case.items()):
        base = next((variants[b] for b in BASELINES if b in variants), {})
        base_decode = _spread(base.get(DECODE))
        rows = []
        for variant, m in sorted(variants.items(), key=lambda kv: _order(kv[0])):
            decode = _spread(m.get(DECODE))
            size = _value(m, SIZE)
            tps = 1 / decode[0] if decode else None
            bound = copy_bw / size if copy_bw and isinstance(size, float | int) and size else None
            first = _value(m, FIRST_RUN)
            total = _value(m, TOTAL)
            rows.append({
                "variant": variant, "size": size, "decode": decode,
                "tps": tps, "tps_iqr": (1 / decode[2], 1 / decode[1]) if decode else None,
                "speedup": base_decode[0] / decode[0] if base_decode and decode else None,
                "pct_bound": 100 * tps / bound if tps and bound else None,
                "total": total, "ttft": _value(m, TTFT),
                "peak_rss": _value(m, PEAK_RSS), "p90_rss": _value(m, P90_RSS),
                "peak_cpu": _value(m, PEAK_CPU), "p90_cpu": _value(m, P90_CPU),
                "token_match": _value(m, TOKEN_MATCH), "max_logit": _value(m, MAX_LOGIT),
                "quantized": _value(m, QUANTIZED), "first_run": first,
                "break_even": _break_even(first, total, decode, base_decode)
                if variant == "compile" else None,
                "failed": any(r.failed for r in m.values()),
            })
        out[key] = rows
    return out


def _order(variant: str) -> tuple[int, str]:
    return (0 if variant in BASELINES else 1, variant)


def _break_even(first, total, decode, base_decode) -> float | str | None:
    """Tokens after which compiling has paid: the first generation's extra cost (compile)
    over the per-token time it saves against the baseline."""
    if not all(isinstance(v, float | int) for v in (first, total)) or not decode or \
            not base_decode:
        return None
    saving = base_decode[0] - decode[0]
    if saving <= 0:
        return "never"
    return max(first - total, 0.0) / saving


def _num(v) -> bool:
    return isinstance(v, float | int) and not isinstance(v, bool)


def cells(row: dict) -> list[str]:
    def f(v, fmt):
        return "n/a" if v is None else v if isinstance(v, str) else fmt(v)

    tps = "n/a" if row["tps"] is None else (
        f"{row['tps']:.1f} ({row['tps_iqr'][0]:.1f}-{row['tps_iqr'][1]:.1f})")
    mb = lambda v: f"{v / 1e6:.0f}"  # noqa: E731
    return [
        row["variant"], f(row["size"], mb), tps, f(row["speedup"], lambda v: f"{v:.2f}x"),
        f(row["pct_bound"], lambda v: f"{v:.0f}%"), f(row["total"], lambda v: f"{v:.3g}"),
        f(row["ttft"], lambda v: f"{v:.3g}"), f(row["peak_rss"], mb), f(row["p90_rss"], mb),
        f(row["peak_cpu"], lambda v: f"{v:.0f}"), f(row["p90_cpu"], lambda v: f"{v:.0f}"),
        f(row["token_match"], lambda v: f"{v:.2f}"), f(row["max_logit"], lambda v: f"{v:.3g}"),
        f(row["quantized"], lambda v: f"{v:.0f}"), f(row["first_run"], lambda v: f"{v:.3g}"),
        f(row["break_even"], lambda v: f"{v:.0f} tokens"),
    ]


def tables(env_rows: list[Row]) -> list[Table]:
    out = []
    for (size, prompt, new, threads), rows in summary(env_rows).items():
        unit = "thread" if threads == "1" else "threads"
        out.append(Table(
            f"GPT-2 {size}: prompt {prompt} tokens, {new} new tokens, {threads} {unit} "
            "(tok/s from the median decode step; speedup vs the fp32/bf16 baseline)",
            HEADERS, [cells(r) for r in rows], ["worse" if r["failed"] else "" for r in rows]))
    return out
