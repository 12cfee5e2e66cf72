"""The ViT VAE table on a GPU within a lease's minutes: one child process per variant.

Through asv, every (metric x batch x variant) is its own process and compiles the model
again: for the 350M decoder at three batches and ten variants that is hours of compiling.
Here one child per variant builds the case per batch and measures what asv would record,
through the asv classes themselves (benchmark_classes.on_case: their track methods and
sample counts, on the one built case): device time (CUDA-graph replay, or the profiler's
kernel time where the variant cannot be captured) and caller time (VaeTime), the
device-time check (VaeDeviceCheck: device time against caller time, the GPU's clock and
other processes), peak CUDA memory (VaeCudaMemory). Beside them, SSIM/PSNR against eager on
fresh photographs, the longest kernels of a call (measure.kernel_times: where the device
time goes, so two variants' tables say which kernels differ), and the first run (one-time
work plus the first batch; the first batch of a child gets fresh compile caches, so its
figure is a cold compile). The table is report/vae.py's. Results are written after each
batch, so a child cut at its deadline keeps what it finished.

Usage (on the device, with torchao from .whl): python3 scripts/vae_gpu_table.py
  --config 350M-f16x64 --part decoder --batches 32,8,1 --variants eager,compile,...
  [--repeat eager,compile-reduce-overhead] [--deadline 540] [--out DIR]
A variant written `fp8-compile@32+8` is measured at those batches only.
--repeat measures those variants' batches 1 and 8 a second time in fresh children (host-bound
cases move between runs: the spread is printed).
Anywhere: --table-only MACHINE --out DIR prints the tables of DIR's results. The H200's records
are in docs/findings/records/h200-records.tar.xz: extract it first and point --out at a folder
in it (--out is created when missing, so a wrong path prints empty tables).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from kernelwatch import inventory, measure
from kernelwatch.errors import KernelwatchError, Unavailable
from kernelwatch.regression import benchmark_classes
from kernelwatch.report import clocks
from kernelwatch.report import vae as vae_report
from kernelwatch.workloads.vae import case as vae
from kernelwatch.workloads.vae import spec as vae_spec

REPO = Path(__file__).resolve().parents[1]


def _asv(metric: str, case, dev):
    """The asv class of a metric family, measuring the built case."""
    cls = benchmark_classes.load(REPO, "vae", vae.SPEC.metrics[metric])
    return benchmark_classes.on_case(cls, case, dev)


def one_variant(config: str, part: str, variant: str, batches: list[str], out: Path) -> None:
    dev = torch.device("cuda")
    # Two jobs of one variant in one run share its folder ("eager,...,eager@1"): the later
    # keeps the earlier's batches (main moved an earlier run's file aside).
    results: dict[str, dict] = json.loads(out.read_text()) if out.exists() else {}
    for i, batch in enumerate(batches):
        m: dict = {}
        results[batch] = m
        case = None  # a case that fails to build leaves nothing to free
        try:
            case = vae.build_case(config, part, batch, variant, dev,
                                  image_offset=vae.FRESH_IMAGE_OFFSET, apply=False)
            reference = case.eager_reconstruction(case.inputs)
            torch.cuda.synchronize()
            first = (measure.cold_compile_seconds if i == 0 else measure.first_call_seconds)
            outputs: list = []
            m["first_run"] = first(lambda c=case, o=outputs: o.append(c.first_run()), dev)
            q = vae.quality(case.reconstruction(outputs.pop()), reference)
            m["ssim"], m["psnr"] = q.ssim, q.psnr
            params = (config, part, batch, variant)
            timed = _asv("time", case, dev)
            m["time"] = statistics.median(timed.track_time(*params)["samples"])
            m["graph"] = vae_spec.device_time_uses_graph(variant)
            m["caller_time"] = statistics.median(timed.track_caller_time(*params)["samples"])
            m["check"], m["check_detail"] = benchmark_classes.device_check(
                _asv("device-check", case, dev), params)
            m["peak_cuda"] = _asv("cuda-memory", case, dev).track_peak_cuda_allocated(*params)
        except Unavailable as exc:
            m["skipped"] = str(exc)
        except (KernelwatchError, RuntimeError) as exc:
            m["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if "peak_cuda" in m:  # measured: where its time goes, apart, so a failure keeps it
            try:
                m["longest"] = [[k.name, k.seconds, k.launches]
                                for k in measure.kernel_times(case.run, dev)[:6]]
            except (KernelwatchError, RuntimeError) as exc:
                m["longest_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        print(f"  {part} {variant} batch {batch}: "
              + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in m.items() if k != "longest"), flush=True)
        partial = out.with_suffix(".partial")  # a child cut mid-write leaves the last whole file
        partial.write_text(json.dumps(results))
        os.replace(partial, out)
        del case  # the model and its graphs, before the next batch builds its own
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="350M-f16x64", choices=list(vae.CONFIGS))
    ap.add_argument("--part", default="decoder", choices=vae_spec.PARTS)
    ap.add_argument("--batches", default="32,8,1")
    on_gpu = [v for v, d in vae.VARIANTS.items() if d.unavailable_on("cuda") is None]
    ap.add_argument("--variants", default=",".join(on_gpu))
    ap.add_argument("--repeat", default="", help="variants whose batches 1 and 8 run twice")
    ap.add_argument("--deadline", type=float, default=540, help="seconds for everything")
    ap.add_argument("--out", default=os.environ.get("OUT", "vae-gpu-out"))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a child: this variant only
    ap.add_argument("--table-only", metavar="MACHINE",
                    help="measure nothing: print the tables of the results under --out "
                         "(named PART-VARIANT[-run2]/part.json), headed with MACHINE")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batches = args.batches.split(",")
    if args.table_only:
        print(table_text(out, args.config, args.part, args.table_only))
        return
    if args.one:
        one_variant(args.config, args.part, args.one, batches, Path(args.out) / "part.json")
        return

    start = time.monotonic()
    # "variant@32+8" measures that variant at those batches only.
    jobs = [(v.split("@")[0], v.split("@")[1].split("+") if "@" in v else batches, "")
            for v in args.variants.split(",")]
    jobs += [(v, [b for b in batches if b in ("1", "8")], "-run2")
             for v in args.repeat.split(",") if v]
    started: set[tuple[str, str]] = set()
    for variant, job_batches, tag in jobs:
        left = args.deadline - (time.monotonic() - start)
        if left < 30:
            print(f"{variant}{tag}: not measured, the deadline is near", flush=True)
            continue
        work = out / f"{args.part}-{variant}{tag}"
        work.mkdir(exist_ok=True)
        earlier = work / "part.json"
        if earlier.exists() and (variant, tag) not in started:
            # An earlier run's results: kept beside, out of this run's table.
            earlier.rename(work / f"part-{int(earlier.stat().st_mtime)}.json")
        started.add((variant, tag))
        t0 = time.monotonic()
        try:
            subprocess.run([sys.executable, __file__, "--one", variant, "--config",
                            args.config, "--part", args.part, "--batches",
                            ",".join(job_batches), "--out", str(work)], timeout=left - 10,
                           check=False)
        except subprocess.TimeoutExpired:
            print(f"{variant}{tag}: cut at the deadline; kept what it finished", flush=True)
        print(f"{variant}{tag}: {time.monotonic() - t0:.0f} s", flush=True)

    text = table_text(out, args.config, args.part,
                      f"{torch.cuda.get_device_name()} (torch {torch.__version__})")
    print(text)
    (out / f"table-{args.part}.md").write_text(text + "\n")


def table_text(out: Path, config: str, part: str, machine: str) -> str:
    """The markdown tables of every child's results under `out` for one part."""
    cases: dict[tuple, dict[str, dict]] = {}
    labels: dict[tuple, str] = {}
    second: dict[tuple, dict] = {}
    notes: list[str] = []
    for part_file in sorted(out.glob(f"{part}-*/part.json")):
        name = part_file.parent.name.removeprefix(f"{part}-")
        variant, run2 = name.removesuffix("-run2"), name.endswith("-run2")
        for batch, m in json.loads(part_file.read_text()).items():
            if run2:
                second[(batch, variant)] = m
                continue
            metrics = {k: v for k, v in m.items() if k in vae_report.TRACKS.values()}
            if "error" in m or "skipped" in m:
                notes.append(f"- batch {batch} {variant}: {m.get('error') or m['skipped']}")
            if "error" in m:
                metrics = {"time": "failed"}
            if metrics:
                cases.setdefault((config, part, batch), {})[variant] = metrics
            if "time" in m:
                params = {"config": config, "part": part, "batch": batch, "variant": variant}
                labels[tuple(sorted(params.items()))] = clocks.LABELS[
                    vae.device_time_method(variant)]
            if m.get("check"):
                notes.append(f"- batch {batch} {variant} check: {m.get('check_detail')}")
            if m.get("longest"):
                notes.append(f"- batch {batch} {variant}, longest kernels (device ms a call, "
                             "launches): " + "; ".join(
                                 f"{inventory.short_name(name)} {sec * 1e3:.3f} x{n:g}"
                                 for name, sec, n in m["longest"]))
    lines = [f"ViT VAE {config} {part} on {machine}"]
    for table in vae_report.make_tables(cases, labels):
        lines += ["", table.title, "| " + " | ".join(table.headers) + " |",
                  "|" + "---|" * len(table.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if notes:
        lines += ["", "Notes:", *notes]
    if second:
        lines += ["", "Host-bound cases, two runs (caller ms/image: first run / second run; "
                  "device ms/image likewise)"]
        for (batch, variant), m in sorted(second.items()):
            first = cases.get((config, part, batch), {}).get(variant, {})
            b = int(batch)

            def ms(v, b=b):
                return f"{v / b * 1e3:.3g}" if isinstance(v, float) else "n/a"

            lines.append(f"- batch {batch} {variant}: caller {ms(first.get('caller_time'))} / "
                         f"{ms(m.get('caller_time'))}; device {ms(first.get('time'))} / "
                         f"{ms(m.get('time'))}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
