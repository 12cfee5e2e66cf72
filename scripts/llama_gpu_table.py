"""The Llama layer table on a GPU within a lease's minutes: one child process per case.

Through asv, every (metric x case) is its own process and compiles the layer again: for one
shape's 16 cases and seven metric families that is an hour of compiling. Here one child per
(backend, pass, variant) builds the case once and measures what asv would record, through
the asv classes themselves (benchmark_classes.on_case: their track methods and sample
counts, on the one built case): device time by the case's declared method (CUDA-graph
replay, or the profiler's kernel time) and caller time (LayerTime), the device-time check's
flags (LayerDeviceCheck), peak CUDA memory (LayerCudaMemory) and the compiled share
(LayerCompiledShare: forward, eager and surgical). Beside them, the first call in a fresh
process with a fresh inductor cache (the cold compile), and the output's (and gradients')
error against eager and against float64 on fresh inputs. The table is
report/llama_layer.py's. Each child writes its results when it ends, so a run cut at its
deadline keeps what finished.

Usage (on the device; TransformerEngine on PYTHONPATH for the te rows):
  python3 scripts/llama_gpu_table.py --shape llama-3.2-1b [--seq-len 2048]
      [--backends torch,te] [--passes forward,forward-backward] [--variants ...]
      [--deadline 540] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from kernelwatch import measure
from kernelwatch.errors import Unavailable
from kernelwatch.regression import benchmark_classes
from kernelwatch.report import clocks
from kernelwatch.report import llama_layer as layer_report
from kernelwatch.workloads.llama_layer import case as llama_layer
from kernelwatch.workloads.llama_layer import spec as llama_layer_spec

REPO = Path(__file__).resolve().parents[1]
FRESH_SEED = 1234  # inputs of the accuracy checks, not the timed ones


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _class(metric: str) -> type:
    """The asv class of a metric family."""
    return benchmark_classes.load(REPO, "llama_layer", llama_layer.SPEC.metrics[metric])


def _asv(metric: str, case, dev):
    """The asv class of a metric family, measuring the built case."""
    return benchmark_classes.on_case(_class(metric), case, dev)


def one_case(shape: str, seq_len: str, backend: str, pass_: str, variant: str,
             path: Path) -> None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    params = (shape, seq_len, backend, pass_, variant)
    m: dict = {}

    def save():
        path.write_text(json.dumps(m, indent=1))

    try:
        case = llama_layer.build_case(*params, dev)
    except Unavailable as exc:
        m["skipped"] = str(exc)
        save()
        return
    m["method"] = case.device_method if dev.type == "cuda" else measure.HOST_CLOCK
    m["cold_compile"] = measure.cold_compile_seconds(case.run, dev)
    save()
    timed = _asv("time", case, dev)
    m["time"] = statistics.median(timed.track_time(*params)["samples"])
    m["caller_time"] = statistics.median(timed.track_caller_time(*params)["samples"])
    save()
    if dev.type == "cuda":
        m["check"], m["check_detail"] = benchmark_classes.device_check(
            _asv("device-check", case, dev), params)
        m["peak_cuda"] = _asv("cuda-memory", case, dev).track_peak_cuda_allocated(*params)
        save()
    inputs = case.fresh_inputs(seed=FRESH_SEED)
    out = case.call(*inputs)
    eager = out if variant == "eager" else llama_layer.eager_of(case).call(*inputs)
    exact = llama_layer.float64_reference(case, inputs)
    vs_eager = measure.accuracy(_first(out), _first(eager))
    m["vs_eager"], m["max_abs_vs_eager"] = vs_eager.rel_l2, vs_eager.max_abs
    m["vs_float64"] = measure.accuracy(_first(out), _first(exact)).rel_l2
    if pass_ == "forward-backward":
        m["grad_vs_float64"] = measure.accuracy(out[1:], exact[1:]).rel_l2
        m["grad_vs_eager"] = measure.accuracy(out[1:], eager[1:]).rel_l2
    save()
    if pass_ == "forward" and variant in ("eager", "surgical"):
        share = _class("compiled-share")()
        share.setup(*params)  # builds the layer with its regions labelled
        m["share"] = share.track_compiled_share(*params)
        save()


def table_text(out: Path, shape: str, seq_len: str, machine: str) -> str:
    cases: dict[tuple, dict[str, dict]] = {}
    labels: dict[tuple, str] = {}
    notes: list[str] = []
    for f in sorted(out.glob("case-*.json")):
        backend, pass_, variant = f.stem.removeprefix("case-").split("~")
        m = json.loads(f.read_text())
        if "skipped" in m or "error" in m:
            notes.append(f"- {backend} {pass_} {variant}: {m.get('skipped') or m['error']}")
        metrics = {k: v for k, v in m.items() if k in layer_report.TRACKS.values()}
        if "error" in m and "time" not in metrics:
            metrics["time"] = "failed"
        if metrics:
            cases.setdefault((shape, seq_len, backend, pass_), {})[variant] = metrics
        if "method" in m:
            params = {"shape": shape, "seq_len": seq_len, "backend": backend, "pass": pass_,
                      "variant": variant}
            labels[tuple(sorted(params.items()))] = clocks.LABELS[m["method"]]
        if m.get("check"):
            notes.append(f"- {backend} {pass_} {variant} check: {m.get('check_detail')}")
    lines = [f"Llama layer {shape}, sequence {seq_len}, on {machine}"]
    for table in layer_report.make_tables(cases, labels):
        lines += ["", table.title, "| " + " | ".join(table.headers) + " |",
                  "|" + "---|" * len(table.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", required=True, choices=list(llama_layer.SHAPES))
    p.add_argument("--seq-len", default="2048", choices=list(llama_layer_spec.SEQ_LENS))
    p.add_argument("--backends", default="torch,te")
    p.add_argument("--passes", default="forward,forward-backward")
    p.add_argument("--variants", default=",".join(llama_layer.VARIANTS))
    p.add_argument("--deadline", type=float, default=540, help="seconds for all cases")
    p.add_argument("--case-timeout", type=float, default=240)
    p.add_argument("--out", type=Path, default=Path("gpu-out/llama"))
    p.add_argument("--child", nargs=5, metavar=("BACKEND", "PASS", "VARIANT", "SEQ", "PATH"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        backend, pass_, variant, seq_len, path = args.child
        one_case(args.shape, seq_len, backend, pass_, variant, Path(path))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for pass_ in args.passes.split(","):
        for backend in args.backends.split(","):
            for variant in args.variants.split(","):
                left = args.deadline - (time.monotonic() - start)
                path = args.out / f"case-{backend}~{pass_}~{variant}.json"
                if left < 20:
                    print(f"{backend} {pass_} {variant}: not run (deadline)", flush=True)
                    continue
                t0 = time.monotonic()
                cmd = [sys.executable, __file__, "--shape", args.shape, "--child", backend,
                       pass_, variant, args.seq_len, str(path)]
                try:
                    r = subprocess.run(cmd, capture_output=True, text=True,
                                       timeout=min(args.case_timeout, left))
                    if r.returncode != 0:
                        m = json.loads(path.read_text()) if path.exists() else {}
                        m["error"] = r.stderr.strip().splitlines()[-1][:300] if r.stderr else "?"
                        path.write_text(json.dumps(m, indent=1))
                        (args.out / f"stderr-{backend}-{pass_}-{variant}.txt").write_text(
                            r.stderr[-20000:])
                except subprocess.TimeoutExpired:
                    m = json.loads(path.read_text()) if path.exists() else {}
                    m["error"] = "cut at the deadline"
                    path.write_text(json.dumps(m, indent=1))
                print(f"{backend} {pass_} {variant}: {time.monotonic() - t0:.0f} s", flush=True)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    text = table_text(args.out, args.shape, args.seq_len, f"{name} (torch {torch.__version__})")
    print(text)
    (args.out / f"table-{args.shape}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
