"""The reaper ends every descendant when SIGTERMs come in a burst: a runner's time limit
signals kernelwatch's whole group and kernelwatch then signals the reaper again, so a
second SIGTERM often lands while the first is being handled. A benchmark process in a
session of its own (as asv starts them) must not outlive it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_GRANDCHILD = (
    "import pathlib, subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],\n"
    "                     start_new_session=True)\n"
    "pathlib.Path(sys.argv[1]).write_text(str(p.pid))\n"
    "time.sleep(120)\n")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


@pytest.mark.parametrize("attempt", range(4))
def test_a_burst_of_sigterms_still_ends_a_descendant_in_its_own_session(attempt, tmp_path):
    pidfile = tmp_path / "grandchild"
    # stderr to a file: a descendant left running would hold a pipe open.
    err = tmp_path / "stderr"
    with err.open("w") as stderr:
        reaper = subprocess.Popen([sys.executable, "-m", "kernelwatch.engine.reaper",
                                   str(os.getpid()), "--", sys.executable, "-c", _GRANDCHILD,
                                   str(pidfile)], stderr=stderr)
    grandchild = None
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline and reaper.poll() is None, err.read_text()
            time.sleep(0.02)
        grandchild = int(pidfile.read_text())
        burst_end = time.monotonic() + 0.3
        while time.monotonic() < burst_end and reaper.poll() is None:
            try:
                os.kill(reaper.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
        assert reaper.wait(timeout=30) == 143, err.read_text()[-1000:]
        assert not _alive(grandchild), "a descendant outlived the reaper"
    finally:
        if reaper.poll() is None:
            reaper.kill()
        if grandchild is not None and _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)
