"""No benchmark process outlives kernelwatch: asv starts each benchmark in a process group of
its own, which a signal to kernelwatch's group never reaches. A real `kernelwatch run` is
stopped while asv's benchmark process compiles, and every process that inherited the run's
marker must be gone 5 s later."""

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import kernelwatch_exe

pytestmark = pytest.mark.slow


def marked(marker: str) -> list[int]:
    """Live processes whose environment carries the marker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"KW_TEST_MARK={marker}".encode() not in (entry / "environ").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _argv(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2:].split()[1])


def benchmark_processes(pids: list[int]) -> list[int]:
    """asv's benchmark processes among `pids`, outside kernelwatch's process group: a
    `asv/benchmark.py run` (launch method spawn), or a fork of `benchmark.py run_server`
    made to run one benchmark (forkserver); not discovery, nor the idle server."""
    out = []
    for pid in pids:
        try:
            argv = _argv(pid)
            if not any(a.endswith(b"benchmark.py") for a in argv):
                continue
            spawned = b"run" in argv
            forked = b"run_server" in argv and b"run_server" in _argv(_parent(pid))
            if (spawned or forked) and os.getpgid(pid) != os.getpgrp():
                out.append(pid)
        except (OSError, ProcessLookupError, ValueError):
            pass
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_benchmark_process_outlives_a_stopped_run(sig, clone, isolated_home, tmp_path):
    marker = secrets.token_hex(8)
    env = {**os.environ, "KW_TEST_MARK": marker, "KERNELWATCH_MACHINE": "reaper-test"}
    out, err = tmp_path / "out", tmp_path / "err"
    # Compiled RoPE: its benchmark process spends seconds compiling, time to catch it.
    cmd = [kernelwatch_exe(), "run", "--existing", "--rerun", "--workload", "rope",
           "--param", "shape=tiny", "--param", "form=rotate-half", "--param",
           "dtype=float32", "--param", "variant=compile", "--metric", "time"]
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(cmd, cwd=clone, env=env, stdout=o, stderr=e)
    try:
        deadline = time.monotonic() + 180
        while not benchmark_processes(marked(marker)):
            assert proc.poll() is None, f"the run ended first: {err.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no benchmark process appeared in 180 s"
            time.sleep(0.2)
        time.sleep(1.0)
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=60)
        left = marked(marker)
        for _ in range(50):
            if not left:
                break
            time.sleep(0.1)
            left = marked(marker)
        assert left == [], f"still running 5 s after {sig.name}: {left}"
        if sig == signal.SIGTERM:
            assert rc == 2
            assert "terminated (SIGTERM)" in err.read_text()
    finally:
        for pid in marked(marker):
            os.kill(pid, signal.SIGKILL)
