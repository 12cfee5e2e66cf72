"""The ViT VAE tables of a run recorded on a GPU: report/vae.py's tables of DIR's records.

Usage: python3 scripts/vae_gpu_table.py --table-only MACHINE [--config 350M-f16x64]
    [--part decoder] --out DIR
DIR holds a folder per variant, PART-VARIANT[-run2]/part.json: per batch, device and caller
time, the device-time check, peak CUDA memory, SSIM/PSNR against eager, the first run and the
longest kernels, or why the case was skipped or failed (-run2: host-bound cases measured a
second time, printed as their spread). The records do not name their config: the run's own table
beside them (table-PART.md) does, else --config; an option it contradicts exits. The tables are
headed with MACHINE. The H200's records are in docs/findings/records/h200-records.tar.xz:
extract it first and point --out at a folder in it. A new run is measured through asv:
`kernelwatch run --existing --suite gpu-commit` on the GPU machine (other cases: `--workload vae
--param config=5B --param variant=fp8-compile`), then `kernelwatch report --workload vae
--machine M --markdown`.
"""

from __future__ import annotations

import json
from pathlib import Path

import recorded_tables

from kernelwatch import inventory
from kernelwatch.report import clocks
from kernelwatch.report import vae as vae_report
from kernelwatch.workloads.vae import spec as vae


def main() -> None:
    p = recorded_tables.parser(__doc__)
    p.add_argument("--config", choices=list(vae.CONFIGS),
                   help="the config the records hold (default: the one the run's table-PART.md "
                        "beside them names, else 350M-f16x64)")
    p.add_argument("--part", default="decoder", choices=vae.PARTS,
                   help="the part whose PART-VARIANT folders to print (default: decoder)")
    args = recorded_tables.parse(p, "vae", "--param config=5B --param variant=fp8-compile")
    recorded_tables.require_records(p, args.out, f"{args.part}-*/part.json",
                                    "its variants' folders")
    args.config = recorded_tables.choose(p, "--config", args.config, args.out, "table-*.md",
                                         vae.CONFIGS, default="350M-f16x64")
    print(table_text(args.out, args.config, args.part, args.table_only))


def table_text(out: Path, config: str, part: str, machine: str) -> str:
    """The markdown tables of every variant's records under `out` for one part."""
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
    lines = recorded_tables.markdown(f"ViT VAE {config} {part} on {machine}",
                                     vae_report.make_tables(cases, labels))
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
