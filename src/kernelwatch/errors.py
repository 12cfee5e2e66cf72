"""The two ways a request can fail before anything is measured.

`KernelwatchError` is bad user input (an unknown name, a missing tool): the CLI prints its
message, which names the fix, and exits 2 (`NothingToRun`, a request with nothing to do
here, exits 0). `Unavailable` means "this combination cannot run
here" (a GPU-only variant on a CPU, a library that does not import). It subclasses
NotImplementedError because that is what asv records as skipped rather than failed.
"""

from collections.abc import Iterable, Mapping


class KernelwatchError(Exception):
    """Bad input or a missing prerequisite; the message says how to fix it."""


class Interrupted(KernelwatchError):
    """Ctrl-C or SIGTERM stopped a run: whatever called it stops too (a bisect does not
    take it for a point that failed)."""


class NothingToRun(KernelwatchError):
    """A valid request that leaves nothing to do here (a shard of a selection smaller than
    the number of shards): the CLI says why and exits 0."""


class Unavailable(NotImplementedError):
    """This variant/shape/dtype cannot run on this machine; the message says why."""


def unknown_name(kind: str, name: str, valid: Iterable[str], where: str = "") -> KernelwatchError:
    """One message format for every 'no such shape/variant/workload' error."""
    place = f" for {where}" if where else ""
    names = ", ".join(valid)
    plural = (kind if kind.endswith("s") else f"{kind}es" if kind.endswith(("ch", "sh", "x"))
              else f"{kind}s")
    return KernelwatchError(f"unknown {kind} {name!r}{place}; valid {plural}: {names}")


def check_choices(params: Mapping[str, Iterable[str]],
                  chosen: Mapping[str, Iterable[str] | None], where: str) -> None:
    """Raise `unknown_name` for the first chosen value that is not among its parameter's
    valid values (checked in `params` order); parameters not chosen are not checked."""
    for kind, valid in params.items():
        for value in chosen.get(kind) or ():
            if value not in valid:
                raise unknown_name(kind, value, valid, where=where)


class Terminated(BaseException):
    """SIGTERM arrived (a cancelled CI job, a runner's time limit): unwound like Ctrl-C, past
    every `except Exception`."""
