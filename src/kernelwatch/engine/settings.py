"""The environment variables kernelwatch reads, each checked before anything starts.

A setting the benchmark processes read (a thread count, asv's time budget) would otherwise
be parsed only inside each benchmark process: a typo failed every benchmark, the cause was
only in asv's log, the failures were merged into the recorded file, and a negative budget
was written into benchmarks.json. Checked here, a bad value is one message naming the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kernelwatch.errors import KernelwatchError
from kernelwatch.results.files import Refused, check_machine_name


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str
    example: str
    check: Callable[[str], object]  # raises ValueError with what is wrong


def _number(value: str, kind: type, what: str) -> float:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"it must be {what}") from None


def _positive_int(value: str) -> int:
    n = _number(value, int, "a whole number")
    if n < 1:
        raise ValueError("it must be 1 or more")
    return n


def _positive_seconds(value: str) -> float:
    s = _number(value, float, "a number of seconds")
    if not math.isfinite(s) or s <= 0:
        raise ValueError("it must be a number of seconds above 0")
    return s


def _fraction(value: str) -> float:
    x = _number(value, float, "a fraction")
    if not math.isfinite(x) or not 0 <= x < 10:
        raise ValueError("it must be a fraction from 0 (0.05 = 5%)")
    return x


def _machine(value: str) -> str:
    try:
        return check_machine_name(value)
    except Refused:
        raise ValueError("it must be a plain name: letters, digits, '-', '_' and '.', "
                         "never a path") from None


SETTINGS = (
    Setting("KERNELWATCH_CPU_THREADS", "threads torch uses for CPU kernels", "1",
            _positive_int),
    Setting("KERNELWATCH_BENCHMARK_TIMEOUT",
            "seconds one benchmark process may take (compile included)", "600",
            _positive_seconds),
    Setting("KERNELWATCH_MACHINE", "the asv machine results are filed under", "gpu-h100",
            _machine),
    Setting("KERNELWATCH_INJECT_SLOWDOWN", "a test-only slowdown of the measuring core",
            "0.1", _fraction),
)


def check(environ: Mapping[str, str] | None = None) -> None:
    """Raise KernelwatchError for the first setting in `environ` (default os.environ) whose
    value is not valid; unset and empty settings take their defaults."""
    environ = os.environ if environ is None else environ
    for s in SETTINGS:
        value = environ.get(s.name)
        if not value:
            continue
        try:
            s.check(value)
        except ValueError as exc:
            raise KernelwatchError(
                f"{s.name}={value!r} is not valid ({exc}); it is {s.meaning}: set it like "
                f"{s.name}={s.example}, or unset it for the default") from None
