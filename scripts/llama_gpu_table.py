"""The Llama layer tables of a run recorded on a GPU: report/llama_layer.py's tables of DIR's
records.

Usage: python3 scripts/llama_gpu_table.py --table-only MACHINE [--shape SHAPE] [--seq-len 2048]
    --out DIR
DIR holds a record per case, case-BACKEND~PASS~VARIANT.json: device time by the case's method
and caller time, the device-time check, peak CUDA memory, the compiled share, the cold compile
and the errors against eager and float64, or why the case was skipped or failed. A record does
not name its shape: the run's own table beside them (table-SHAPE.md) does, else --shape (and
--seq-len) say which the folder holds; an option the table contradicts exits. The tables are
headed with MACHINE. The H200's records are in docs/findings/records/h200-records.tar.xz
(llama-h200/: a folder per shape and backend): extract it first and point --out at a folder in
it. A new run is measured through asv: `kernelwatch run --existing --suite gpu-commit` on the
GPU machine (other cases: `--workload llama_layer --param backend=te`), then `kernelwatch
report --workload llama_layer --machine M --markdown`.
"""

from __future__ import annotations

import json
from pathlib import Path

import recorded_tables

from kernelwatch.report import clocks
from kernelwatch.report import llama_layer as layer_report
from kernelwatch.workloads.llama_layer import spec as llama_layer


def main() -> None:
    p = recorded_tables.parser(__doc__)
    p.add_argument("--shape", choices=list(llama_layer.SHAPES),
                   help="the shape the records hold (default: the one the run's table-SHAPE.md "
                        "beside them names)")
    p.add_argument("--seq-len", choices=list(llama_layer.SEQ_LENS),
                   help="the sequence length the records hold (default: the one the run's "
                        "table names, else 2048)")
    args = recorded_tables.parse(p, "llama_layer", "--param backend=te")
    recorded_tables.require_records(p, args.out, "case-*.json", "its cases")
    args.shape = recorded_tables.choose(p, "--shape", args.shape, args.out, "table-*.md",
                                        llama_layer.SHAPES)
    args.seq_len = recorded_tables.choose(p, "--seq-len", args.seq_len, args.out, "table-*.md",
                                          llama_layer.SEQ_LENS, default="2048")
    print(table_text(args.out, args.shape, args.seq_len, args.table_only))


def table_text(out: Path, shape: str, seq_len: str, machine: str) -> str:
    """The markdown tables of every case's record under `out` (`case-BACKEND~PASS~VARIANT.json`)
    for one shape and sequence length."""
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
    lines = recorded_tables.markdown(f"Llama layer {shape}, sequence {seq_len}, on {machine}",
                                     layer_report.make_tables(cases, labels))
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
