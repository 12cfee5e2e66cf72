"""The RoPE tables of a run recorded on a GPU: report/rope.py's tables of DIR/rope.json.

Usage: python3 scripts/rope_gpu_table.py --table-only MACHINE --out DIR
DIR/rope.json holds the copy bandwidth, then a record per (shape, form, dtype, variant): device
time, caller time, the device-time check's flags and the relative L2 error, or why the case was
skipped. The tables are headed with MACHINE. The H200's records are in
docs/findings/records/h200-records.tar.xz: extract it first and point --out at a folder in it.
A new run is measured through asv: `kernelwatch run --existing --suite gpu-commit` on the GPU
machine, then `kernelwatch report --workload rope --machine M --markdown`.
"""

from __future__ import annotations

import json

import recorded_tables

from kernelwatch.report import COPY_KEY
from kernelwatch.report import rope as rope_report
from kernelwatch.results.rows import Row


def main() -> None:
    p = recorded_tables.parser(__doc__)
    args = recorded_tables.parse(p, "rope", "--param form=interleaved")
    recorded_tables.require_records(p, args.out, "rope.json", "rope.json")
    print(table_text(json.loads((args.out / "rope.json").read_text()), args.table_only))


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
    lines = recorded_tables.markdown(
        f"RoPE on {machine}, copy bandwidth {bandwidth / 1e9:.0f} GB/s",
        rope_report.tables(rows))
    skipped = [f"- {r['shape']} {r['form']} {r['dtype']} {r['variant']}: {r['skipped']}"
               for r in records[1:] if "skipped" in r]
    return "\n".join(lines + (["", "Skipped:", *skipped] if skipped else []))


if __name__ == "__main__":
    main()
