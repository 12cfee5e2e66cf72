"""asv's glue (kernelwatch.engine.asvrun) through real asv: the run lock keeps two runs of one
checkout apart, and an environment pip cannot build is one message."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from kernelwatch.results import rows as result_rows

from .conftest import MACHINE, REPO, git, kernelwatch_exe, run

pytestmark = pytest.mark.slow
def test_two_runs_at_once_on_a_branch_not_named_main_keep_both_and_publish(tmp_path,
                                                                           isolated_home):
    """A clone whose branch is `trunk`: asv.conf.json follows `main`, which it lacks, so
    kernelwatch follows the checked-out branch. Two runs started together in it (RoPE and
    GPTQ, one results file): the second waits for the first, and both results are there.
    Each run shows a short summary and leaves asv's whole output in the log it names."""
    repo = tmp_path / "kw"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    git("branch", "-m", "trunk", cwd=repo)
    env = {**os.environ, "KERNELWATCH_MACHINE": MACHINE}
    base = [kernelwatch_exe(), "run", "--existing", "--metric", "time", "--variant", "eager"]
    runs = [[*base, "--workload", "rope", "--shape", "tiny", "--form", "rotate-half",
             "--dtype", "float32"],
            [*base, "--workload", "gptq", "--shape", "tiny/proj", "--scheme", "w4-sym-g128",
             "--blocksize", "16"]]
    procs = [subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for cmd in runs]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    print(*(o[-3000:] for o in outs))
    assert [p.returncode for p in procs] == [0, 0]
    assert any("another kernelwatch run is using this checkout" in o for o in outs)
    assert all("following the checked-out branch trunk" in o for o in outs)
    rows = {r.benchmark for r in result_rows.load(repo / "results")
            if r.env_name.startswith("existing") and r.value is not None}
    assert {"rope.RopeTime.track_time", "gptq.GptqTime.track_time"} <= rows
    for out in outs:
        log = Path(out.split("asv's full output is in ")[-1].split()[0])
        # a line per benchmark process (the benchmark loop's, asv's): in the log only
        each = re.compile(r"kernelwatch \d+/\d+ [\d.]+s ok \w+\.")
        assert each.search(log.read_text()) and not each.search(out)
        assert "asv: done" in out or "part 1/2: done" in out
    r = run([kernelwatch_exe(), "publish"], repo)
    assert r.returncode == 0, r.stderr
    assert (repo / "html" / "index.html").is_file()


def test_a_torch_version_pip_cannot_install_is_one_message(tmp_path, isolated_home):
    """`--torch 9.9.9`: asv cannot build that environment. One message names the version
    and the matrix's versions; asv's traceback stays in the log; nothing is recorded."""
    repo = tmp_path / "kw"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    # What an earlier --existing run recorded: a failed run must not rewrite either file.
    machine_files = [repo / "results" / MACHINE / "machine.json",
                     isolated_home / ".asv-machine.json"]
    machine_files[0].parent.mkdir(parents=True)
    facts = {"machine": MACHINE, "torch": "2.11.0", "cuda": "13.0", "version": 1}
    machine_files[0].write_text(json.dumps(facts))
    machine_files[1].write_text(json.dumps({MACHINE: facts, "version": 1}))
    before = [p.read_bytes() for p in machine_files]
    r = run([kernelwatch_exe(), "run", "--torch", "9.9.9", "--workload", "rope", "--shape",
             "tiny", "--variant", "eager", "--metric", "time", "HEAD^!"], repo,
            KERNELWATCH_ENV_DIR=str(tmp_path / "env"))
    assert r.returncode == 2
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("kernelwatch: error: pip cannot install torch==9.9.9")
    assert "matrix has torch 2.13.0, 2.14.1" in error and "--torch 2.13.0" in error
    assert "the versions pip finds: " in error and "2.14.1" in error.split("finds: ")[1]
    assert "Traceback" not in r.stdout + r.stderr
    assert not list((repo / "results").glob(f"{MACHINE}/*-*.json"))
    assert [p.read_bytes() for p in machine_files] == before
