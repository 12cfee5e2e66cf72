"""What the GPU table scripts share: the arguments of a view over a run recorded on a lent GPU
(`--table-only MACHINE --out DIR`), the answer to a request to measure, and the markdown.

The scripts measure nothing: every figure is measured in asv's benchmark processes through
kernelwatch's one measuring core (docs/architecture.md), so a new table is a suite's results
printed by `kernelwatch report`. The scripts render the JSON records the H200's leases wrote
(docs/findings/records/), so that those tables stay readable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from kernelwatch.report import Table
from kernelwatch.report.format import markdown_table


def parser(doc: str) -> argparse.ArgumentParser:
    """The view's parser: `--table-only MACHINE` and `--out DIR`; a script adds the options
    that pick a table among a folder's records."""
    p = argparse.ArgumentParser(description=doc, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table-only", metavar="MACHINE",
                   help="the machine the records were measured on, heading the tables")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="the folder of a recorded run (extracted from the archive)")
    return p


def parse(p: argparse.ArgumentParser, workload: str, selection: str) -> argparse.Namespace:
    """The view's arguments. Any other option (the measuring ones: shapes, variants, batches,
    deadlines) or a call without `--table-only` exits with where a run is measured instead:
    the per-commit suite, or `selection` (the workload's `--param`s) for other cases."""
    args, rest = p.parse_known_args()
    if rest or args.table_only is None:
        given = [a.split("=")[0] for a in rest if a.startswith("-")]
        raise SystemExit(
            f"{Path(sys.argv[0]).name} prints the tables of a recorded run (--table-only "
            "MACHINE --out DIR) and measures nothing"
            + (f" ({', '.join(given)}: a measurement's options)" if given else "")
            + ". A run is measured through asv: on the GPU machine, `kernelwatch run "
            f"--existing --suite gpu-commit` (other cases: `kernelwatch run --existing "
            f"--workload {workload} {selection}`), then `kernelwatch report --workload "
            f"{workload} --machine M --markdown`.")
    if args.out is None or not args.out.is_dir():
        p.error(f"--out {args.out or 'DIR'}: name the folder of a recorded run (the H200's "
                "are in docs/findings/records/h200-records.tar.xz: extract it first)")
    return args


def require_records(p: argparse.ArgumentParser, out: Path, pattern: str, what: str) -> None:
    """Exit naming the fix when `out` holds no file matching `pattern` (`what`: the records'
    name in the message)."""
    if not any(out.glob(pattern)):
        p.error(f"no {pattern} under {out}: --out names the folder a device run wrote {what} "
                "into")


def choose(p: argparse.ArgumentParser, option: str, given: str | None, out: Path,
           tables: str, choices: Iterable[str], default: str | None = None) -> str:
    """The value of `option` (a shape, a config) for the records under `out`, which do not
    name it: the tables the run wrote beside them (`tables`, a glob) do, in their first line.
    A `given` value those tables contradict exits; without one, the one they name, else
    `default`, else exit asking for it; tables naming several values exit too."""
    named = set()
    for table in out.glob(tables):
        heading = table.read_text(errors="replace").split("\n", 1)[0].replace(",", " ").split()
        named |= set(choices) & set(heading)
    if len(named) > 1:
        p.error(f"{option}: the tables the run wrote beside the records under {out} ({tables}) "
                f"name {' and '.join(sorted(named))}: one folder holds one run's records; "
                "point --out at a folder of one")
    if given is not None and named and given not in named:
        p.error(f"{option} {given}: the tables the run wrote beside the records under {out} "
                f"({tables}) name {' and '.join(sorted(named))}; leave {option} out or name that")
    if given is not None:
        return given
    if named:
        return named.pop()
    if default is None:
        p.error(f"{option}: the records under {out} do not name it; say which the folder "
                "holds")
    return default


def markdown(heading: str, tables: list[Table]) -> list[str]:
    """`heading`, then each table's title and its markdown table."""
    lines = [heading]
    for table in tables:
        lines += ["", table.title, *markdown_table([table.headers, *table.rows])]
    return lines
