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
Anywhere: python3 scripts/rope_gpu_table.py --table-only MACHINE --out DIR prints the table
of DIR/rope.json (what a device run wrote), headed with MACHINE. The H200's records are in
docs/findings/records/h200-records.tar.xz: extract it first and point --out at a folder in it.
te-fused needs TransformerEngine on the machine (docs/workloads.md); without it the row says
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
from kernelwatch.results.rows import Row
from kernelwatch.workloads.rope import case as rope


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="llama-3.2-1b,llama-3.2-3b,llama-3.1-8b")
    p.add_argument("--forms", default=",".join(rope.FORMS))
    p.add_argument("--dtypes", default="bfloat16")
    p.add_argument("--variants", default="eager,compile,te-fused,liger,triton")
    p.add_argument("--out", type=Path, default=Path("gpu-out"))
    p.add_argument("--table-only", metavar="MACHINE",
                   help="measure nothing: print the table of --out's rope.json")
    args = p.parse_args()
    if args.table_only:
        saved = args.out / "rope.json"
        if not saved.exists():
            raise SystemExit(f"no {saved}: --out names the folder a device run wrote rope.json "
                             "into")
        print(table_text(json.loads(saved.read_text()), args.table_only))
        return
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if "te-fused" in args.variants.split(","):
        environment.load_transformer_engine_first()  # before any case loads cuDNN
    args.out.mkdir(parents=True, exist_ok=True)
    machine = (f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
               if dev.type == "cuda" else f"the CPU (torch {torch.__version__})")
    bandwidth = measure.copy_bandwidth(dev)
    records: list[dict] = [{"copy_bandwidth": bandwidth}]
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
                    if dev.type == "cuda":
                        check = measure.check_device_time(fn, sets, dev,
                                                          method=rope.DEVICE_METHOD)
                        rec["check"], rec["check_detail"] = check.flags, check.describe()
                    print(f"{shape} {form} {dtype} {variant}: {rec['time'] * 1e6:.1f} us "
                          f"device, {rec['caller_time'] * 1e6:.1f} us caller, rel L2 "
                          f"{rec['rel_l2']:.2e}, check {clocks.check_text(rec.get('check'))}",
                          flush=True)
                    (args.out / "rope.json").write_text(json.dumps(records, indent=1))
    text = table_text(records, machine)
    print(text)
    (args.out / "rope-table.md").write_text(text + "\n")


def table_text(records: list[dict], machine: str) -> str:
    """report/rope.py's tables of one run's records (the copy bandwidth first, then a record
    per case), from rows shaped as asv's."""
    env = {"gpu": machine}

    def row(benchmark: str, params: dict, value: float) -> Row:
        return Row(machine="device", commit="0" * 40, date=1, env_name="process", env=env,
                   benchmark=benchmark, params=params, value=value)

    bandwidth = records[0]["copy_bandwidth"]
    rows = [row(COPY_KEY, {}, (2 << 30) / bandwidth)]
    for rec in records[1:]:
        if "time" not in rec:
            continue
        params = {k: rec[k] for k in ("shape", "form", "dtype", "variant")}
        rows += [row("rope.RopeTime.track_time", params, rec["time"]),
                 row("rope.RopeTime.track_caller_time", params, rec["caller_time"])]
        if "check" in rec:
            rows.append(row("rope.RopeDeviceCheck.track_device_check", params, rec["check"]))
    lines = [f"RoPE on {machine}, copy bandwidth {bandwidth / 1e9:.0f} GB/s"]
    for table in rope_report.tables(rows):
        lines += ["", table.title, "| " + " | ".join(table.headers) + " |",
                  "|" + "---|" * len(table.headers)]
        lines += ["| " + " | ".join(r) + " |" for r in table.rows]
    skipped = [f"- {r['shape']} {r['form']} {r['dtype']} {r['variant']}: {r['skipped']}"
               for r in records[1:] if "skipped" in r]
    return "\n".join(lines + (["", "Skipped:", *skipped] if skipped else []))


if __name__ == "__main__":
    main()
