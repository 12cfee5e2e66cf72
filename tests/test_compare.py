"""`kernelwatch compare` (kernelwatch.report.compare) on real results: quiet on two runs of
one commit, failing on an injected slowdown."""

import os
import subprocess

import pytest

from .conftest import kernelwatch_exe

pytestmark = pytest.mark.slow
MACHINE = "kernelwatch-test"


def run(cmd, cwd, **env):
    full_env = {**os.environ, "KERNELWATCH_MACHINE": MACHINE, **env}
    r = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    print(r.stdout[-4000:], r.stderr[-4000:])
    return r


def test_compare_stays_quiet_on_two_runs_of_a_commit_and_fails_on_a_slowdown(clone,
                                                                             isolated_home):
    """Three real runs of one commit under three machine names: two plain, one with the
    test-only 20% slowdown. `kernelwatch compare` prints markdown and exits 0 for the first
    pair (GPTQ's tiny layer, about 10 ms a call), 1 against the slowed run."""
    cmd = [kernelwatch_exe(), "run", "--existing", "--workload", "gptq", "--shape", "tiny/proj",
           "--scheme", "w4-sym-g128", "--blocksize", "16", "--variant", "eager",
           "--metric", "time"]
    for machine, slowdown in (("aa-base", "0"), ("aa-same", "0"), ("aa-slow", "0.2")):
        r = run([*cmd, "--machine", machine], clone, KERNELWATCH_INJECT_SLOWDOWN=slowdown)
        assert r.returncode == 0, r.stderr
    same = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-base",
                "--machine", "aa-same"], clone)
    if same.returncode == 1:
        # A shared 2-core machine can slow one whole process by 15-20% (CI once measured
        # 14.3 -> 17.1 ms on an unchanged commit while the next process read 14.8 ms): the
        # default 1.10 threshold then flags noise, which is what `kernelwatch fidelity`
        # exists to calibrate. One false flag is chance; two in a row would be a bug.
        print("first same-commit pair flagged (noise); measuring once more:", same.stdout)
        r = run([*cmd, "--machine", "aa-same2"], clone, KERNELWATCH_INJECT_SLOWDOWN="0")
        assert r.returncode == 0, r.stderr
        same = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine",
                    "aa-base", "--machine", "aa-same2"], clone)
    assert same.returncode == 0, same.stdout
    assert "| before | after | ratio |" in same.stdout
    assert "`gptq.GptqTime.track_time` (tiny/proj, w4-sym-g128, 16, eager)" in same.stdout
    slow = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-base",
                "--machine", "aa-slow"], clone)
    assert slow.returncode == 1
    first = slow.stdout.split("|---|---|---|---|---|---|---|\n")[1].splitlines()[0]
    assert first.startswith("| + |") and "gptq.GptqTime.track_" in first
    assert "| 1.10 |" in first and "worse beyond their threshold" in slow.stderr
    # With a fidelity run filed for the machine, that series is judged at its own threshold.
    fid = run([kernelwatch_exe(), "fidelity", "--machine", "aa-slow", "--workload", "gptq",
               "--param", "variant=eager", "--runs", "3", "--slowdowns", "0.2"], clone)
    assert fid.returncode == 0, fid.stderr
    from kernelwatch import fidelity

    key = "gptq.GptqTime.track_time(tiny/proj, w4-sym-g128, 16, eager)"
    threshold = fidelity.thresholds(clone)["aa-slow"][key]
    own = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-base",
               "--machine", "aa-slow"], clone)
    line = next(ln for ln in own.stdout.splitlines()
                if "`gptq.GptqTime.track_time` (tiny/proj, w4-sym-g128, 16, eager)" in ln)
    cells = [c.strip() for c in line.split("|")]
    assert cells[5] == f"{threshold:.2f}"  # the series' own, from the fidelity run
    # Three noisy processes can set a threshold above the injected 20% (CI once: 1.50), and
    # then that series is rightly not flagged: a mark needs the series' own threshold passed.
    if line.startswith("| + |"):
        assert float(cells[4]) > threshold
    else:
        assert line.startswith("|  |") and threshold > 1.10
    assert (own.returncode == 1) == ("\n| + |" in own.stdout)
    assert "own threshold from `kernelwatch fidelity` where measured (1 series" in own.stdout
    missing = run([kernelwatch_exe(), "compare", "HEAD~1", "HEAD", "--machine", "aa-base"],
                  clone)
    assert missing.returncode == 2 and "no results for commit" in missing.stderr
