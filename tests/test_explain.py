"""Why a series moved, end to end with real asv and real torch.compile on the CPU: a test
workload committed in a clone, then a commit that slows only the host side of the call, then
a commit that adds a graph break (inductor's one fused kernel becomes two). `compare`
must report the kernel count as a change with the kernels' names, attribute the second
slowdown to the host, and the site's regressions page must show the kernel change."""

import os
import subprocess
import sys

import pytest

from .conftest import REPO, git

pytestmark = pytest.mark.slow
MACHINE = "explain-test"

WORKLOAD = '''"""A test workload: one pointwise function, fused by inductor into one kernel."""
from kernelwatch.workloads.declaration import SuitePart, Variant, Workload, variant_table

SPEC = Workload(
    name="fusion", params={"size": ["tiny"], "variant": ["compile"]},
    metrics={"time": "FusionTime", "kernels": "FusionKernels"},
    variants=variant_table(Variant("compile")),
    suites={"quick": [SuitePart({"size": ["tiny"], "variant": ["compile"]})]})
'''
CASE = '''"""The test workload's function."""
HOST_WORK = 0  # busy-loop iterations a caller pays beyond the kernel (its Python wrapper)


def kernel(x):
    y = x * 2.0
    return y.sin() + 1.0
'''
BREAK = '''

def kernel(x):
    import torch

    y = x * 2.0
    torch._dynamo.graph_break()
    return y.sin() + 1.0
'''
BENCHMARKS = '''import torch

from kernelwatch import measure
from kernelwatch.workloads.fusion import case as fusion
from kernelwatch.workloads.fusion.spec import SPEC

from .common import _KernelInventory


class _Fusion:
    params = list(SPEC.params.values())
    param_names = list(SPEC.params)

    def setup(self, size, variant):
        torch.set_num_threads(1)
        self.dev = torch.device("cpu")
        self.fn = torch.compile(fusion.kernel)
        self.x = torch.randn(4096)


def _wrapped(fn):
    def call(x):
        n = 0
        for _ in range(fusion.HOST_WORK):
            n += 1
        return fn(x)
    return call


class FusionTime(_Fusion):
    version = "1"
    unit = "seconds"

    def setup(self, size, variant):
        super().setup(size, variant)
        self.fn(self.x)

    def track_time(self, size, variant):
        return measure.time_cpu(self.fn, [(self.x,)]).for_asv()

    def track_caller_time(self, size, variant):
        return measure.time_cpu(_wrapped(self.fn), [(self.x,)]).for_asv()


class FusionKernels(_Fusion, _KernelInventory):
    version = "1"

    def _first_call(self):
        return self.fn(self.x)
'''


def commit(repo, message):
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=repo)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A clone with three commits of the test workload, each measured (--existing, the
    clone's sources on the path of kernelwatch and of asv's benchmark processes)."""
    repo = tmp_path_factory.mktemp("explain") / "kw"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "HOME": str(home), "KERNELWATCH_MACHINE": MACHINE,
           "PYTHONPATH": str(repo / "src"), "ASV_PYTHONPATH": str(repo / "src")}
    folder = repo / "src" / "kernelwatch" / "workloads" / "fusion"
    folder.mkdir()
    (folder / "spec.py").write_text(WORKLOAD)

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "kernelwatch.cli", *args], cwd=repo,
                           env=env, capture_output=True, text=True)
        print(r.stdout[-3000:], r.stderr[-3000:])
        return r

    slower_host = CASE.replace("HOST_WORK = 0", "HOST_WORK = 20000")
    steps = [("fusion: one fused kernel", CASE),
             ("fusion: the caller's wrapper does more host work", slower_host),
             ("fusion: a graph break splits the kernel",
              slower_host.split("\n\ndef kernel")[0] + BREAK)]
    for message, text in steps:
        (folder / "case.py").write_text(text)
        (repo / "benchmarks" / "fusion.py").write_text(BENCHMARKS)
        commit(repo, message)
        r = run("run", "--existing", "--workload", "fusion", "--skip-machine-facts")
        assert r.returncode == 0, r.stderr[-3000:]
    return repo, run


def test_compare_names_the_lost_fusion_as_a_kernel_count_change(measured):
    repo, run = measured
    r = run("compare", "HEAD~1", "HEAD")
    assert r.returncode == 1, r.stdout  # more kernels: worse
    row = next(ln for ln in r.stdout.splitlines() if "track_kernel_count" in ln)
    assert row.startswith("| + | 1 | 2 |")
    why = r.stdout.split("#### Where the time went")[1]
    assert "2 kernels, was 1: lost fusion of `cpp_fused_" in why


def test_compare_attributes_a_host_only_slowdown_to_the_host(measured):
    repo, run = measured
    r = run("compare", "HEAD~2", "HEAD~1", "--factor", "1.5")
    why = r.stdout.split("#### Where the time went")[1].strip().splitlines()
    line = next(ln for ln in why if "fusion (tiny, compile)" in ln)
    parts = line.split(": ", 1)[1].split("; ")
    assert parts[0].startswith("host +"), line  # the largest part, first
    assert "kernels" not in line  # the kernels did not change this time


def test_the_site_shows_the_kernel_change_with_the_names(measured):
    repo, run = measured
    r = run("publish")
    assert r.returncode == 0, r.stderr[-2000:]
    page = (repo / "html" / "kernelwatch" / "regressions.html").read_text()
    assert "fusion.FusionKernels.track_kernel_count" in page
    assert "lost fusion of cpp_fused_" in page
