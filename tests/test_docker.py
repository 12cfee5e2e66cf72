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

from .conftest import (
    BASE,
    HOST_CA,
    REPO,
    git,
    git_daemon,
    kernelwatch_exe,
    liger_kernel_repository,
    sh,
)

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
    # kernelwatch removes (kills) the container on the way out. A burst, as a runner's time
    # limit sends to a group: a SIGTERM landing in the clean-up must not cut it short.
    for _ in range(5):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    out = "".join(lines)
    print(out[-3000:])
    assert "interrupted" in out
    assert not _containers_mounting(clone), "the interrupted run's container still runs"
    after = {f.name for f in machine_dir.glob("*-*.json")}
    assert set(before) <= after
    for name in after:
        json.loads((machine_dir / name).read_text())  # whole, readable files


def _containers_mounting(path: Path) -> list[str]:
    """The running containers that mount `path`."""
    ids = sh(["docker", "ps", "-q"], check=True).stdout.split()
    if not ids:
        return []
    r = sh(["docker", "inspect", "--format", "{{.Id}} {{range .Mounts}}{{.Source}} {{end}}",
            *ids])  # one that ended since `ps` is left out of the output
    return [line.split()[0] for line in r.stdout.splitlines() if str(path) in line.split()[1:]]


# A library whose build (setup.py, run by pip inside asv) tries what a later job on the runner
# would pay for, and writes down what it managed in the one place it may write.
HOSTILE_SETUP = """
import glob, os, subprocess
from setuptools import setup

report = []

def attempt(what, action):
    try:
        action()
        report.append(what + ": done")
    except Exception as exc:
        report.append(what + ": refused (" + type(exc).__name__ + ")")

def write(path, text="import os\\n"):
    with open(path, "w") as f:
        f.write(text)

def fsmonitor():
    subprocess.run(["git", "-C", "/repo", "config", "core.fsmonitor", "touch /tmp/pwned"],
                   check=True, capture_output=True)

def link(results):
    if not os.path.lexists(results + "/leak.json"):
        os.symlink("/etc/passwd", results + "/leak.json")

attempt("hook in /repo/.git", lambda: write("/repo/.git/hooks/post-checkout"))
attempt("core.fsmonitor in /repo/.git/config", fsmonitor)
attempt("file in /repo", lambda: write("/repo/planted.txt"))
for site in glob.glob("/asv-env/*/lib/python*/site-packages"):
    attempt(".pth in its environment", lambda site=site: write(site + "/zz-planted.pth"))
attempt("file in /asv-env", lambda: write("/asv-env/planted-by-library"))
for results in glob.glob("/results/*"):
    attempt("link in " + results, lambda results=results: link(results))
    write(results + "/hostile-report.txt", "\\n".join(report) + "\\n")

setup(name="liger-kernel", version="0.0.1", packages=["liger_kernel"])
"""


@pytest.fixture
def hostile_library(tmp_path):
    """A git URL of `liger-kernel` whose build is HOSTILE_SETUP: target runs clone it from a
    URL inside the container, as from GitHub."""
    liger_kernel_repository(tmp_path / "srv" / "liger-kernel", HOSTILE_SETUP)
    with git_daemon(tmp_path / "srv") as url:
        yield f"{url}/liger-kernel"


def _volume_files(volume: str, image: str) -> set[str]:
    r = sh(["docker", "run", "--rm", "-v", f"{volume}:/v:ro", image, "find", "/v",
            "-name", "zz-planted.pth", "-o", "-name", "planted-by-library"], check=True)
    return set(r.stdout.split())


def test_a_target_library_cannot_write_the_checkout_nor_another_runs_environments(
        cpu_image, clone, hostile_library, tmp_path):
    """scripts/ci/bench.sh target as the workflow runs it, in Docker, on a library whose
    build tries to plant a git hook and core.fsmonitor in the mounted checkout's .git, a file
    in the checkout, .pth files in every environment it sees, and a link to the host's
    files among its results. It can reach its own environment volume and results-DIST/, and
    nothing else: the checkout is read-only, the suite's volume is not mounted, and the link
    is removed before anything could upload it."""
    head_before = git("rev-parse", "HEAD", cwd=clone)
    untracked_before = set(git("status", "--short", "--ignored", cwd=clone).splitlines())
    store = tmp_path / "store.git"
    git("init", "-q", "--bare", str(store), cwd=tmp_path)
    own = f"kernelwatch-asv-env-liger-kernel-{cpu_image.replace(':', '-')}"
    # The suite's volume (push, nightly, pr) and any other library's, with what they hold of
    # the kind planted here (an earlier run on code without this isolation may have left some).
    sh(["docker", "volume", "create", containers.env_volume_for(cpu_image)], check=True)
    volumes = sh(["docker", "volume", "ls", "-q"]).stdout.split()
    others = {v: _volume_files(v, cpu_image) for v in volumes
              if v.startswith("kernelwatch-asv-env-") and v != own}
    bench = str(clone / "scripts" / "ci" / "bench.sh")
    r = sh([bench, "target"], clone, {
        "KW_RUNNER": "docker", "KW_DEVICE": "cpu", "KW_IMAGE": cpu_image, "KW_NETWORK": "host",
        "KW_MACHINE": "ci-target", "KW_REMOTE": str(store), "KW_RANGE": "main^!",
        "KW_TARGET": f"liger-kernel={hostile_library}",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        # One benchmark process: what is tested is where the library's build could write.
        "KW_RUN_ARGS": "--workload rope --param shape=tiny --param form=rotate-half "
                       "--param dtype=float32 --metric time --torch 2.13.0 --skip-machine-facts"})
    assert not (clone / ".git" / "hooks" / "post-checkout").exists()
    assert git("config", "--default", "", "core.fsmonitor", cwd=clone) == ""
    assert not (clone / "planted.txt").exists()
    assert "the repository read-only" in r.stdout
    report = (clone / "results-liger-kernel" / "hostile-report.txt").read_text()
    assert "hook in /repo/.git: refused" in report  # it did try, and was told no
    assert "core.fsmonitor in /repo/.git/config: refused" in report
    assert "file in /repo: refused" in report
    assert ".pth in its environment: done" in report  # its own volume: its own runs only
    assert _volume_files(own, cpu_image)  # what it planted is where it was allowed to
    for volume, before in others.items():  # untouched by this run
        assert _volume_files(volume, cpu_image) == before, volume
    assert "leak.json" in r.stderr and not (clone / "results-liger-kernel" / "leak.json"
                                            ).is_symlink()
    assert r.returncode == 1  # the run measured, but left a link behind: not a success
    assert [f for f in (clone / "results-liger-kernel" / "ci-target").glob("*.json")
            if f.name != "machine.json"]  # the commit's result file (liger skips on a CPU)
    # kernelwatch wrote its configs, lock, logs and the library's mirror in the container;
    # the clone holds only the results folder more (the session's other runs left theirs).
    left = set(git("status", "--short", "--ignored", cwd=clone).splitlines())
    assert left - untracked_before <= {"!! results-liger-kernel/"}
    assert not (clone / ".kernelwatch" / "targets" / "liger-kernel.git").exists()
    assert git("rev-parse", "HEAD", cwd=clone) == head_before


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
