"""Whether the host moved under a time: the machine's dispatch fact (regression.detect's
HOST_FACT) at two measurements, and what is said beside a time the host paces that moved
the same way, in `kernelwatch compare` and in the site's change table. Still counted: the
code may have moved too."""

from __future__ import annotations

from kernelwatch.regression import detect
from kernelwatch.report import clocks
from kernelwatch.results.rows import Row


def fact_ratio(before: Row | None, after: Row | None,
               factor: float = detect.DEFAULT_FACTOR) -> float | None:
    """How far the host's dispatch moved from `before` to `after` (its rows at two
    measurements), where it moved beyond `factor`; None where it did not, or was not
    measured at both by one version of its benchmark."""
    if not (before and after and before.median and after.median) or (
            before.version and after.version and before.version != after.version):
        return None  # not measured at both, or measured by different benchmark code
    return detect.host_ratio(before.samples or [before.median],
                             after.samples or [after.median], factor)


def moved_with(row: Row, flag: str, host: float | None) -> bool:
    """Whether `row`, a time flagged `flag` ("worse", "better"), is one the host paces and
    moved the way the host's dispatch moved (`host`: fact_ratio)."""
    from kernelwatch import workloads

    if not (host and flag in ("worse", "better") and row.unit == "seconds"):
        return False
    method = clocks.method(row, lambda p: workloads.device_method_for_benchmark(
        row.benchmark, p) or "")
    return (flag == "worse") == (host > 1) and detect.host_paced(
        row.benchmark, row.device_type, method)


def note(host: float, ratio: float, factor: float) -> str:
    """Beside a host-paced time that moved with the host: how far the host moved, and
    whether the time (`ratio`) moved further than a host that much slower (or faster)
    explains, by more than the series' threshold (`factor`): a time all host work moves as
    far as the host, within its noise."""
    beyond = ratio > host * factor if host > 1 else ratio < host / factor
    return (f"the host moved with it: one tiny op's dispatch {host:.2f}x "
            f"({detect.HOST_FACT}); this time carries the host's work"
            + (", and moved further than the host" if beyond else ""))
