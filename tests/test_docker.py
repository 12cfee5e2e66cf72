"""Real Docker: the CPU image built from the registry-free base with the local torch wheel,
the quick suite inside it over two commits, publishing on the host; the error paths.

Needs a Docker engine: `make test` runs scripts/ensure-docker.sh first, which installs and
starts one on a bare Debian machine (CI). Slow: minutes.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kernelwatch import containers

from .conftest import BASE, HOST_CA, REPO, git, kernelwatch_exe, sh

pytestmark = pytest.mark.slow


def test_cpu_image_has_torch_asv_and_a_non_root_user(cpu_image):
    r = sh(["docker", "run", "--rm", cpu_image, "python", "-c",
            "import os, torch, asv, kernelwatch; print(torch.__version__, os.getuid())"],
           check=True)
    version, uid = r.stdout.split()
    assert version.startswith("2.13.0") and uid == "1000"


def test_quick_suite_in_container_over_two_commits(cpu_image, clone):
    # RoPE's tiny case, its time only: the container mechanics (mounts, the host user's
    # files, the machine name, the matrix environment built inside) are the same for every
    # workload and metric, and every quick set runs through asv on the host
    # (test_asv_end_to_end); each process more costs CI seconds here.
    r = sh([kernelwatch_exe(), "docker", "run", "--tag", cpu_image, "--network", "host", "--",
            "run", "--workload", "rope", "--param", "shape=tiny", "--param", "form=rotate-half",
            "--param", "dtype=float32", "--metric", "time", "--track", "time",
            "--torch", "2.13.0", "HEAD~2..HEAD"], cwd=clone)
    assert r.returncode == 0
    machine_dir = clone / "results" / containers.machine_for(cpu_image)
    files = [f for f in machine_dir.glob("*.json") if f.name != "machine.json"]
    head, parent = git("rev-parse", "HEAD", cwd=clone), git("rev-parse", "HEAD~1", cwd=clone)
    data = [json.loads(f.read_text()) for f in files]
    assert {d["commit_hash"] for d in data} == {head, parent}
    assert {d["params"]["torch"] for d in data} == {"2.13.0"}
    for f in files:  # written as the host user, through the mount
        assert f.stat().st_uid == os.getuid()

    r = sh([kernelwatch_exe(), "publish"], cwd=clone)
    assert r.returncode == 0
    page = (clone / "html" / "kernelwatch" / "index.html").read_text()
    assert containers.machine_for(cpu_image) in page


def test_interrupted_container_keeps_written_results(cpu_image, clone):
    """Re-run the suite and stop it right after it rewrote its first result file: every file
    written before is still there and whole."""
    machine_dir = clone / "results" / containers.machine_for(cpu_image)
    before = {f.name: f.stat().st_mtime for f in machine_dir.glob("*-*.json")}
    assert len(before) == 2, "needs the quick run's results (test above)"
    proc = subprocess.Popen(
        [kernelwatch_exe(), "docker", "run", "--tag", cpu_image, "--network", "host", "--",
         # The quick case's timings only: the first commit's file is rewritten within
         # about 30 s, while the second commit still runs.
         "run", "--workload", "rope", "--param", "shape=tiny", "--param", "form=rotate-half",
         "--param", "dtype=float32", "--metric", "time", "--torch", "2.13.0", "--rerun",
         "HEAD~2..HEAD"],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Drain its output as it comes: a full pipe would block kernelwatch mid-print.
    # SIGTERM, as a cancelled CI job sends. (SIGINT is ignored by processes that a
    # non-interactive shell started in the background, so a test cannot rely on it.)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any(f.stat().st_mtime > before[f.name] for f in machine_dir.glob("*-*.json")):
            break
        time.sleep(1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)  # kernelwatch removes (kills) the container on the way out
    proc.wait(timeout=120)
    reader.join(timeout=30)
    out = "".join(lines)
    print(out[-3000:])
    assert "interrupted" in out
    after = {f.name for f in machine_dir.glob("*-*.json")}
    assert set(before) <= after
    for name in after:
        json.loads((machine_dir / name).read_text())  # whole, readable files


def _dangling_images() -> set[str]:
    return set(sh(["docker", "images", "-q", "--filter", "dangling=true"]).stdout.split())


@pytest.fixture
def removes_its_dangling_images(engine):
    """A failed build leaves its finished steps as untagged images (about 1 GB here); remove
    the ones this test made, so repeated runs do not fill the engine's disk."""
    before = _dangling_images()
    yield
    new = _dangling_images() - before
    if new:
        sh(["docker", "rmi", "-f", *sorted(new)])


def test_failing_build_shows_the_failing_steps_last_lines(removes_its_dangling_images,
                                                          torch_wheelhouse):
    sh([str(REPO / "docker" / "bootstrap-base"), BASE], check=True)
    r = sh([kernelwatch_exe(), "docker", "build", "--tag", "kernelwatch-test:broken",
            "--base-image", BASE, "--torch-version", "0.0.0", "--torch-index-url", "",
            "--wheelhouse", str(torch_wheelhouse), "--ca-bundle", str(HOST_CA),
            "--network", "host"])
    assert r.returncode == 2
    assert "docker build of kernelwatch-test:broken failed" in r.stderr
    assert "last lines of the failing step" in r.stderr
    assert "torch==0.0.0" in r.stderr


def test_full_engine_disk_names_the_fix():
    # The engine's own words from the CI run whose disk filled up; the message must say what
    # to do about it rather than end in a traceback.
    err = containers._build_failed(
        "kernelwatch:cpu", "Error processing tar file(exit status 1): write /wheelhouse/"
        "torch.whl: no space left on device", containers.deque())
    assert "docker image prune" in str(err) and "docker system df" in str(err)


def test_no_engine_is_one_clear_error(tmp_path):
    r = sh([kernelwatch_exe(), "docker", "build"],
           env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert r.returncode == 2
    assert r.stderr.startswith("kernelwatch: error: no Docker engine is reachable")
    assert "dockerd" in r.stderr


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).with_name("hadolint")
    r = sh([str(hadolint), str(REPO / "docker" / "Dockerfile")])
    assert r.returncode == 0, r.stdout
