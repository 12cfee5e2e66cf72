"""The ViT VAE table, in the shape of the ViTok compile/INT8 write-up's test
plan: per part, config and batch, each variant's ms/image, images/s, peak memory,
SSIM and PSNR against eager, compile (one-time) seconds, break-even samples and speedup,
beside the write-up's expectation. Device time and what a Python caller pays are both shown:
at batch 1 and 8 the caller's time is the one a user sees (the GPU waits for the host).
"""

from __future__ import annotations

from kernelwatch.report import Table, case_metrics, clocks
from kernelwatch.results.rows import Row
from kernelwatch.workloads.vae import spec as vae

PREFIX = "vae."
TITLE = "ViT VAE"
# The quality gate a speedup must pass (workloads.vae.quality_gate), in words.
GATE = "SSIM vs eager under 0.99 compiled, 0.98 quantized"
# asv track -> the table's name for it.
TRACKS = {"track_time": "time", "track_caller_time": "caller_time",
          "track_first_run": "first_run", "track_cold_compile": "cold_compile",
          "track_peak_cuda_allocated": "peak_cuda", "track_peak_rss": "peak_rss",
          "track_ssim": "ssim", "track_psnr": "psnr", "track_device_check": "check"}
# The write-up's "Expected Speedup" per kind of variant (its executive summary).
EXPECTED = {"compile": "1.2-1.5x", "int8": "1.0-1.25x", "fp8": "1.3-1.6x (H100+)",
            "torch-ao": "CPU only"}
EXPECTED_BREAK_EVEN = "~1200 (compile)"

HEADERS = ["variant", "ms/image", "ms/image (caller)", "images/s (caller)", "speedup",
           "speedup (caller)", "write-up expects", "peak MB", "SSIM", "PSNR dB",
           "one-time s", "break-even images", "device clock", "check"]

Metrics = dict[str, float | str]  # short name (TRACKS' values) -> value, or "failed"


def expected(variant: str) -> str:
    return EXPECTED.get(vae.variant_kind(variant) or "", "")


def _num(v) -> bool:
    return isinstance(v, float | int) and not isinstance(v, bool)


def rows_for(batch: int, by_variant: dict[str, Metrics]) -> list[dict]:
    """One dict per variant of one (config, part, batch), eager first."""
    eager = by_variant.get("eager", {})
    out = []
    for variant in sorted(by_variant, key=lambda v: (v != "eager", v)):
        m = by_variant[variant]
        row: dict = {"variant": variant, "failed": "failed" in m.values(),
                     "check": m.get("check")}
        for clock in ("time", "caller_time"):
            t, base = m.get(clock), eager.get(clock)
            row[clock] = t / batch if _num(t) else t
            row[f"speedup_{clock}"] = base / t if _num(t) and _num(base) and t else None
        caller = m.get("caller_time")
        row["images_per_s"] = batch / caller if _num(caller) and caller else None
        row["peak"] = m.get("peak_cuda", m.get("peak_rss"))
        row["ssim"], row["psnr"] = m.get("ssim"), m.get("psnr")
        # The workload's quality gate: a row below it is marked (and coloured), never dropped.
        row["below_gate"] = (vae.ssim_below_gate(variant, row["ssim"]) if _num(row["ssim"])
                             else None)
        # One-time cost: the first run over eager's first run (the fuller cost: quantizing,
        # compiling, first-call setup), else the cold compile alone.
        first, base_first = m.get("first_run"), eager.get("first_run")
        cost = (first - base_first if _num(first) and _num(base_first)
                else m.get("cold_compile"))
        row["cost"] = cost if variant != "eager" else None
        row["break_even"] = None
        if variant != "eager" and _num(cost):
            t_var = m.get("caller_time", m.get("time"))
            t_base = eager.get("caller_time", eager.get("time"))
            if _num(t_var) and _num(t_base):
                images = vae.break_even_samples(max(cost, 0.0), t_base, t_var, batch)
                row["break_even"] = "never" if images is None else images
        out.append(row)
    return out


def cells(row: dict) -> list[str]:
    def f(v, fmt):
        return "n/a" if v is None else v if isinstance(v, str) else fmt(v)

    ms = lambda v: f"{v * 1e3:.3g}"  # noqa: E731
    x = lambda v: f"{v:.2f}x"  # noqa: E731
    return [row["variant"], f(row["time"], ms), f(row["caller_time"], ms),
            f(row["images_per_s"], lambda v: f"{v:.4g}"), f(row["speedup_time"], x),
            f(row["speedup_caller_time"], x), expected(row["variant"]),
            f(row["peak"], lambda v: f"{v / 1e6:.0f}"), f(row["ssim"], lambda v: f"{v:.4f}") + (
                f" (below {row['below_gate']})" if row["below_gate"] else ""),
            f(row["psnr"], lambda v: f"{v:.1f}"), f(row["cost"], lambda v: f"{v:.3g}"),
            f(row["break_even"], lambda v: f"{v:.0f}"), row.get("clock", ""),
            row.get("check_text", "")]


def summary(env_rows: list[Row]) -> dict[tuple, dict[str, Metrics]]:
    """{(config, part, batch): {variant: metrics}} from one environment's asv rows."""
    return case_metrics(env_rows, PREFIX, TRACKS, ("config", "part", "batch"))


def make_tables(cases: dict[tuple, dict[str, Metrics]],
                labels: dict[tuple, str] | None = None) -> list[Table]:
    tables = []
    for (config, part, batch), by_variant in sorted(
            cases.items(), key=lambda kv: (kv[0][0], kv[0][1], int(kv[0][2]))):
        rows = rows_for(int(batch), by_variant)
        for row in rows:
            params = {"config": config, "part": part, "batch": batch, "variant": row["variant"]}
            row["clock"] = (labels or {}).get(tuple(sorted(params.items())), "")
            m = by_variant[row["variant"]]
            row["check_text"] = clocks.check_text(m.get("check"), m.get("time"),
                                                  m.get("caller_time"),
                                                  gpu=row["clock"] != "host clock")
        tables.append(Table(
            f"ViT VAE {config} {part}, batch {batch}: ms/image from device time and from "
            "the caller's; speedup vs eager; SSIM/PSNR of the reconstruction vs eager's; "
            f"break-even = one-time s / caller time saved per image (write-up: "
            f"{EXPECTED_BREAK_EVEN})",
            HEADERS, [cells(r) for r in rows],
            ["worse" if r["failed"] or r["below_gate"] else "" for r in rows]))
    return tables


def tables(env_rows: list[Row]) -> list[Table]:
    return make_tables(summary(env_rows),
                       clocks.clock_labels(env_rows, PREFIX, vae.device_method_for))
