"""Publishing needs no torch: a venv with kernelwatch[publish] alone (what
scripts/ci/publish.sh installs on a hosted runner) pushes results to a results branch, and
publish.sh pulls them and writes the site; `report` and `compare` run there too."""

import os
import subprocess
import sys
import time

import pytest

from .conftest import REPO, git, write_case_results

pytestmark = pytest.mark.slow
MACHINE = "torch-free"
CASE = {"shape": "tiny", "form": "rotate-half", "dtype": "float32", "variant": "eager"}


@pytest.fixture(scope="session")
def publish_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("publish") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0 = time.monotonic()
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    f"{REPO}[publish]"], check=True)
    print(f"kernelwatch[publish] installed in {time.monotonic() - t0:.0f} s")
    return venv


def test_publish_report_compare_and_history_without_torch(publish_venv, tmp_path):
    python = publish_venv / "bin" / "python"
    blocked = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    assert blocked.returncode != 0  # the venv has no torch
    clone = tmp_path / "kw"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    head, parent = git("rev-parse", "HEAD", cwd=clone), git("rev-parse", "HEAD~1", cwd=clone)
    for commit, median in ((parent, 1e-3), (head, 3e-3)):  # HEAD three times slower
        write_case_results(clone / "results", MACHINE, commit, "env", CASE,
                           {"rope.RopeTime.track_time":
                            [median * (1 + i / 1000) for i in range(20)]})
    env = {**os.environ, "KERNELWATCH_MACHINE": MACHINE, "HOME": str(tmp_path),
           "PATH": f"{publish_venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    kw = [str(publish_venv / "bin" / "kernelwatch")]

    def run(*cmd, cwd=clone):
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        print(r.stdout[-2000:], r.stderr[-2000:])
        return r

    assert run(*kw, "history", "push", "--remote", str(bare)).returncode == 0
    report = run(*kw, "report")
    assert report.returncode == 0 and "rope" in report.stdout.lower()
    # docs/' tables: one workload of one machine, as markdown
    table = run(*kw, "report", "--workload", "rope", "--machine", MACHINE, "--markdown")
    assert table.returncode == 0 and table.stdout.startswith(f"### {MACHINE}")
    assert "|---|" in table.stdout
    other = run(*kw, "report", "--machine", "no-such-box")
    assert other.returncode == 2 and f"it holds {MACHINE}" in other.stderr
    compare = run(*kw, "compare", parent, head, "--machine", MACHINE)
    assert compare.returncode == 1 and "rope.RopeTime.track_time" in compare.stdout

    # A second checkout publishes from the branch alone, as publish.yml's job does.
    site = tmp_path / "site"
    subprocess.run(["git", "clone", "-q", str(REPO), str(site)], check=True)
    t0 = time.monotonic()
    r = subprocess.run(["scripts/ci/publish.sh"], cwd=site, capture_output=True, text=True,
                       env={**env, "KW_REMOTE": str(bare),
                            "KW_PUBLISH_VENV": str(publish_venv)})
    print(r.stdout[-2000:], r.stderr[-2000:], f"publish.sh: {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0
    assert (site / "html" / "index.html").is_file()
    assert "rope.RopeTime.track_time" in (site / "html" / "kernelwatch" / "regressions.html"
                                          ).read_text()
