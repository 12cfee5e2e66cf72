"""`kernelwatch`: a thin wrapper over asv and Docker. It never replaces them: every command
prints the asv command it runs, and plain `asv run/publish/compare` keep working on the
repository as-is. This module only assembles the commands' parsers (kernelwatch.commands)
and turns their errors into one message and an exit status."""

from __future__ import annotations

import argparse
import signal
import sys

from kernelwatch.commands import COMMANDS
from kernelwatch.engine import settings
from kernelwatch.errors import KernelwatchError, NothingToRun, Terminated


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kernelwatch",
        description="Benchmark isolated ML kernels (eager, torch.compile, fused) with asv "
        "across commits and PyTorch versions, and publish the history.",
        epilog="Each command wraps asv; it prints the asv command it runs. "
        "Plain asv commands work on the repository too.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def split_asv_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """`kernelwatch run ... -- ASV ARGS`: what follows `--` goes to asv unchanged, and
    kernelwatch's own options may stand anywhere before it (after the range too)."""
    if argv[:1] == ["run"] and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _on_sigterm(signum, frame) -> None:
    # Once: a second SIGTERM while asv's processes are being stopped and the finished
    # combinations' inventories filed would cut that short (SIGKILL still ends it).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    own, asv_args = split_asv_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(own)
    args.asv_args = asv_args
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        settings.check()
        return args.handler(args)
    except NothingToRun as exc:
        print(f"kernelwatch: {exc}", flush=True)
        return 0
    except KernelwatchError as exc:
        print(f"kernelwatch: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("kernelwatch: error: terminated (SIGTERM); result files already written "
              "under results/ are kept", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
