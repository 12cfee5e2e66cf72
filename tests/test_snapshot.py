"""A run never leaves a recorded file worse than it found it. asv rewrites a result file in
place; with results/ on a full filesystem (a small tmpfs made here) it used to leave the
earlier results as truncated JSON. Now the file is put back, and the message names the full
disk and the room needed."""

import json
import os
import shutil
import subprocess

import pytest
from asv.results import Results

from .conftest import REPO, kernelwatch_exe

pytestmark = pytest.mark.slow
CASE = ["--workload", "rope", "--param", "shape=tiny", "--param", "form=rotate-half",
        "--param", "dtype=float32", "--param", "variant=eager"]


def run(repo, *args, env):
    r = subprocess.run([kernelwatch_exe(), "run", "--existing", *CASE, *args], cwd=repo,
                       capture_output=True, text=True, env=env)
    print(r.stdout[-3000:], r.stderr[-3000:])
    return r


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_keeps_the_recorded_file_and_names_the_cause(tmp_path, isolated_home):
    repo = tmp_path / "kw"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    env = {**os.environ, "KERNELWATCH_MACHINE": "full-disk"}
    assert run(repo, "--metric", "time", env=env).returncode == 0
    results = repo / "results"
    recorded = {p: p.read_bytes() for p in results.rglob("*.json")}
    [result] = [p for p in recorded if p.parent.name == "full-disk" and p.name != "machine.json"]

    aside = tmp_path / "aside"
    shutil.copytree(results, aside)
    shutil.rmtree(results)
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(results)], check=True)
    try:
        shutil.copytree(aside, results, dirs_exist_ok=True)
        with open(results / "filler", "wb", buffering=0) as f:  # every byte left taken
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        # More results for the same commit and environment: asv must rewrite the file, and
        # more than the slack of its last page.
        r = run(repo, "--metric", "time", "--metric", "accuracy", "--param", "form=interleaved",
                env=env)
        assert r.returncode == 2
        assert "the disk holding results/ is full" in r.stderr and "MiB free" in r.stderr
        # kernelwatch's benchmark loop replaces a result file atomically: the full disk
        # stops the write of the new file, and the recorded one was never touched.
        assert "Recorded files were kept: none was touched" in r.stderr
        assert "Traceback" not in r.stderr
        # Readable, and it holds every benchmark recorded before (an asv call of this run
        # that finished before the disk filled may have added to it).
        before = json.loads(recorded[result])["results"]
        after = Results.load(str(result), machine_name="full-disk")
        assert set(before) <= set(after.get_all_result_keys())
        (results / "filler").unlink()
        report = subprocess.run([kernelwatch_exe(), "report"], cwd=repo, capture_output=True,
                                text=True, env=env)
        assert report.returncode == 0, report.stderr
    finally:
        subprocess.run(["umount", str(results)], check=False)


def test_a_full_disk_message_names_the_disk_that_filled(tmp_path):
    """pip's error names the file it could not write: the message names that disk (asv's
    environments); with no file named and room on every disk (pip's temporary files were
    removed when it stopped), it gives the room left on each and what a torch environment
    takes."""
    from kernelwatch.engine.run import disk_full_message

    results, envs = tmp_path / "results", tmp_path / ".asv" / "env"
    envs.mkdir(parents=True)
    line = f"OSError: [Errno 28] No space left on device: '{envs}/abc/lib/libtorch_cuda.so'"
    named = disk_full_message(line, results, envs, 64)
    assert named.startswith(f"the disk holding asv's environments ({envs}) is full (")
    assert "6 GB for 2.14.1" in named and "KERNELWATCH_ENV_DIR" in named
    unnamed = disk_full_message("ERROR: [Errno 28] No space left on device", results, envs, 64)
    assert unnamed.startswith("a disk filled while asv ran (asv: ERROR: [Errno 28]")
    assert "results/ " in unnamed and f"asv's environments ({envs}) " in unnamed
    assert "MiB" in unnamed and "is full" not in unnamed
