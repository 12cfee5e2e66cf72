"""The arguments several commands share, defined once (asv's commands/common_args.py): the
machine results are filed under, a library's results, one workload parameter's value."""

from __future__ import annotations

import argparse
import math

MACHINE_DEFAULT = "default: $KERNELWATCH_MACHINE or this host's name"


def add_machine(parser: argparse.ArgumentParser, what: str = "asv machine name",
                default_help: str = MACHINE_DEFAULT) -> None:
    parser.add_argument("--machine", help=f"{what} ({default_help}): a plain name, never a "
                        "path")


def ratio(text: str) -> float:
    """A --factor: the ratio of medians that counts as a change, a finite number above 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 1):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ratio above 1: 1.05 counts a 5% change, 1.10 a 10% one")
    return value


def add_target(parser: argparse.ArgumentParser, what: str, *, needs_repo: bool = True) -> None:
    """--target DIST=REPO (a library and its git clone or URL), or DIST[=REPO] where only
    the library's results are read."""
    parser.add_argument("--target", metavar="DIST=REPO" if needs_repo else "DIST[=REPO]",
                        help=what)


def add_param(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--param", action="append", metavar="NAME=VALUE", help=what)


def track_name(text: str) -> str:
    """A --track: a track_ method's name, with or without its `track_` prefix."""
    return text.removeprefix("track_")
