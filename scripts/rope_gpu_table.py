"""The RoPE table on a GPU in one process: every (shape, form, variant) in a few seconds each.

Through asv each (track x case) is a process of its own (about 12 s on the lent H200: torch's
import, the inputs, a warm compile), so three shapes of four variants with two clocks and the
check take over seven minutes. Here one process builds each case as RopeTime does (input sets
four times the L2 size), and measures with kernelwatch's own core what asv would record:
device time (CUDA-graph replay), caller time, the device-time check's flags and the relative
L2 error against float64 on fresh inputs; the copy bandwidth first. The table is
report/rope.py's, from rows shaped as asv's.

Usage (on the device): python3 scripts/rope_gpu_table.py [--shapes ...] [--forms ...]
    [--dtypes bfloat16] [--variants eager,compile,te-fused,liger,triton] [--out DIR]
te-fused needs TransformerEngine on the machine (docs/llama_layer.md); without it the row says
why it was skipped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from kernelwatch import environment, measure
from kernelwatch.errors import Unavailable
from kernelwatch.report import COPY_KEY, clocks
from kernelwatch.report import rope as rope_report
from kernelwatch.results import Row
from kernelwatch.workloads import rope


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="llama-3.2-1b,llama-3.2-3b,llama-3.1-8b")
    p.add_argument("--forms", default=",".join(rope.FORMS))
    p.add_argument("--dtypes", default="bfloat16")
    p.add_argument("--variants", default="eager,compile,te-fused,liger,triton")
    p.add_argument("--out", type=Path, default=Path("gpu-out"))
    args = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if "te-fused" in args.variants.split(","):
        environment.load_transformer_engine_first()  # before any case loads cuDNN
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"gpu": torch.cuda.get_device_name() if dev.type == "cuda" else "none"}

    def row(benchmark, params, value):
        return Row(machine="device", commit="0" * 40, date=1, env_name="process", env=env,
                   benchmark=benchmark, params=params, value=value)

    bandwidth = measure.copy_bandwidth(dev)
    rows = [row(COPY_KEY, {}, (2 << 30) / bandwidth)]
    records = [{"copy_bandwidth": bandwidth}]
    for shape in args.shapes.split(","):
        for form in args.forms.split(","):
            for dtype in args.dtypes.split(","):
                for variant in args.variants.split(","):
                    params = {"shape": shape, "form": form, "dtype": dtype, "variant": variant}
                    rec = dict(params)
                    records.append(rec)
                    try:
                        case = rope.build_case(shape, form, dtype, variant, dev,
                                               rotate_bytes=4 * measure.l2_cache_bytes(dev))
                    except Unavailable as exc:
                        rec["skipped"] = str(exc)
                        continue
                    inputs = case.fresh_inputs(seed=1234)
                    reference = rope.reference(form, inputs)  # first: liger works in place
                    rec["rel_l2"] = measure.accuracy(case.fn(*inputs), reference).rel_l2
                    fn, sets = case.fn, case.input_sets
                    rec["time"] = measure.time_device(fn, sets, dev, method=rope.DEVICE_METHOD
                                                      ).median
                    rec["caller_time"] = measure.time_caller(fn, sets, dev).median
                    rows += [row("rope.RopeTime.track_time", params, rec["time"]),
                             row("rope.RopeTime.track_caller_time", params, rec["caller_time"])]
                    if dev.type == "cuda":
                        check = measure.check_device_time(fn, sets, dev,
                                                          method=rope.DEVICE_METHOD)
                        rec["check"], rec["check_detail"] = check.flags, check.describe()
                        rows.append(row("rope.RopeDeviceCheck.track_device_check", params,
                                        rec["check"]))
                    print(f"{shape} {form} {dtype} {variant}: {rec['time'] * 1e6:.1f} us "
                          f"device, {rec['caller_time'] * 1e6:.1f} us caller, rel L2 "
                          f"{rec['rel_l2']:.2e}, check {clocks.check_text(rec.get('check'))}",
                          flush=True)
                    (args.out / "rope.json").write_text(json.dumps(records, indent=1))
    lines = [f"RoPE on {env['gpu']} (torch {torch.__version__}), copy bandwidth "
             f"{bandwidth / 1e9:.0f} GB/s"]
    for table in rope_report.tables(rows, lambda s: f"{s * 1e6:.1f} us"):
        lines += ["", table.title, "| " + " | ".join(table.headers) + " |",
                  "|" + "---|" * len(table.headers)]
        lines += ["| " + " | ".join(r) + " |" for r in table.rows]
    text = "\n".join(lines)
    print(text)
    (args.out / "rope-table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
