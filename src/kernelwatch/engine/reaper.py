"""Run a command so that none of its processes outlives kernelwatch.

asv starts each benchmark in a process group of its own, so a signal to kernelwatch's group
never reaches it, and when kernelwatch dies (a cancelled CI job, a runner's wall-clock limit,
`kill -9`) those processes are reparented to init and keep the GPU busy. This small process
sits between kernelwatch and asv:
- it is a child subreaper (Linux prctl), so every orphaned descendant of asv becomes its
  child instead of init's, and stays findable;
- it asks the kernel for SIGTERM when kernelwatch dies (PR_SET_PDEATHSIG), SIGKILL included;
- on SIGTERM, on SIGHUP, and after asv exits, it ends every descendant still alive (SIGTERM,
  then SIGKILL after a grace period).
Ctrl-C reaches asv directly (same process group); the reaper waits for asv to stop, then
ends what asv left behind.

Usage: python -m kernelwatch.engine.reaper PARENT_PID -- COMMAND...
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 3.0


class _Stop(Exception):
    pass


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(pid: int) -> list[int]:
    """The live descendants of `pid`, read from /proc (parents before children)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[0] != "Z":
            children[int(fields[1])].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_descendants(grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every descendant, wait up to `grace` seconds, SIGKILL the rest."""
    me = os.getpid()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        pids = descendants(me)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and descendants(me):
            _reap()
            time.sleep(0.05)
        _reap()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m kernelwatch.engine.reaper PARENT_PID -- COMMAND...",
              file=sys.stderr)
        return 2
    parent = int(argv[0])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # kernelwatch died before the request took effect
        return 143

    def stop(signum, frame):
        # Ignored from here on: kernelwatch's own SIGTERM often follows a group's, and a
        # second _Stop raised while ending the descendants would leave them running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    # A Python handler, not SIG_IGN: asv must still get Ctrl-C (handlers reset on exec).
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    rc = 143
    try:
        child = subprocess.Popen(argv[2:])
        while True:
            try:
                rc = child.wait()
                break
            except InterruptedError:
                continue
    except _Stop:
        rc = 143
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        end_descendants()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
