"""asv's forkserver on a GPU: the suite's imports leave CUDA alone, so the benchmark
processes it forks can use it; and a server that did initialise it fails every benchmark
loudly with the fix (benchmarks/common.py device()). On the CPU: what links Liger's import
to CUDA, with the real libraries."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import REPO

gpu = pytest.mark.skipif("not __import__('torch').cuda.is_available()",
                         reason="the forkserver's CUDA check needs a CUDA GPU")


def serve_and_fork(before: str, checks: str) -> subprocess.CompletedProcess:
    """What asv's forkserver does, in a new interpreter: `before` (the server's environment),
    import every benchmark module, `checks` (on the server), then fork a benchmark process
    that uses CUDA; it prints "child 0" where the fork could."""
    code = textwrap.dedent("""
        import os, sys
        sys.path.insert(0, os.getcwd())
        {before}
        import importlib, pkgutil, torch
        import benchmarks
        for m in pkgutil.iter_modules(benchmarks.__path__):
            importlib.import_module(f"benchmarks.{{m.name}}")
        from benchmarks.common import device
        {checks}
        pid = os.fork()
        if pid == 0:
            x = torch.ones(4, device=device())
            os._exit(0 if float(x.sum()) == 4.0 else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """).format(before=before, checks=checks)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


@gpu
def test_the_suite_leaves_cuda_alone_so_forks_can_use_it():
    """What asv's forkserver does: import every benchmark module, then fork a benchmark
    process that uses CUDA. The import must not initialise CUDA (else every fork fails)."""
    r = serve_and_fork(
        'os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"',
        'assert device().type == "cuda"   # asks, as discovery and the server may\n'
        'assert not torch.cuda.is_initialized(), "the suite\'s import initialised CUDA"')
    assert r.returncode == 0 and "child 0" in r.stdout, r.stderr[-2000:]


@gpu
def test_a_fork_of_a_process_that_initialised_cuda_fails_loudly():
    code = textwrap.dedent("""
        import os, sys
        sys.path.insert(0, os.getcwd())
        import torch
        from benchmarks.common import device
        torch.zeros(1, device="cuda")
        pid = os.fork()
        if pid == 0:
            try:
                device()
            except RuntimeError as exc:
                print("refused:", exc, flush=True)
                os._exit(0)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "CUDA was initialised in asv's forkserver" in r.stdout
    assert "--launch spawn" in r.stdout


@gpu
def test_the_servers_import_of_liger_leaves_cuda_alone_under_plain_asv():
    """asv's forkserver (plain `asv run`: nothing sets the NVML check but the suite) imports
    Liger's RoPE with the suite (its variant's `server_import`) where the trial says a fork
    can still use CUDA after it; either way a fork uses CUDA. Whether it did is printed
    (scripts/forkserver-cuda-probe.py says why)."""
    pytest.importorskip("liger_kernel", reason="Liger Kernel is not installed (pip install "
                        "liger-kernel; scripts/device-env.sh installs it from .whl)")
    r = serve_and_fork(
        'os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)\n'
        'sys.argv = ["benchmark.py", "run_server", "benchmarks", "socket"]  # as asv starts it',
        'from benchmarks.common import server_import_trial, TRIAL_OK\n'
        'from kernelwatch.workloads.rope import spec\n'
        'imported = "liger_kernel.ops.rope" in sys.modules\n'
        'print("the server imported Liger:", imported)\n'
        'trial = server_import_trial("liger_kernel.ops.rope",\n'
        '                            spec.VARIANTS["liger"].server_import_without) == TRIAL_OK\n'
        'assert imported == trial, f"the server imported: {imported}, the trial said {trial}"\n'
        'assert not torch.cuda.is_initialized(), "the server initialised CUDA"')
    assert r.returncode == 0 and "child 0" in r.stdout, (r.stdout + r.stderr)[-2000:]


@gpu
def test_liger_imported_without_peft_leaves_forks_able_to_use_cuda():
    """Where peft is installed (the GPU machines' image), Liger's import reaches torchao
    through peft and transformers, and torchao's import initialises CUDA; without peft, as
    the server imports it, a fork still uses CUDA."""
    pytest.importorskip("liger_kernel", reason="Liger Kernel is not installed (pip install "
                        "liger-kernel; scripts/device-env.sh installs it from .whl)")
    pytest.importorskip("peft", reason="peft is not installed: Liger's import does not "
                        "reach torchao here, with or without it")
    r = serve_and_fork(
        'os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"',
        'from benchmarks.common import server_import_trial, TRIAL_OK\n'
        'from kernelwatch.workloads.rope import spec\n'
        'without = spec.VARIANTS["liger"].server_import_without\n'
        'verdict = server_import_trial("liger_kernel.ops.rope", without)\n'
        'assert verdict == TRIAL_OK, f"without {without}: {verdict}"\n'
        'assert not torch.cuda.is_initialized(), "the trial initialised CUDA in the server"')
    assert r.returncode == 0 and "child 0" in r.stdout, (r.stdout + r.stderr)[-2000:]


@gpu
def test_the_servers_trial_lets_a_module_that_leaves_cuda_alone_be_imported():
    """The trial of benchmarks.common.server_import_trial says yes for a module whose import
    leaves CUDA alone, and leaves CUDA alone in the process that asks."""
    r = serve_and_fork(
        'os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"',
        'from benchmarks.common import server_import_trial, TRIAL_OK\n'
        'assert server_import_trial("json") == TRIAL_OK, "the trial found no CUDA in a fork"\n'
        'assert not torch.cuda.is_initialized(), "the trial initialised CUDA in the server"')
    assert r.returncode == 0 and "child 0" in r.stdout, (r.stdout + r.stderr)[-2000:]


@gpu
def test_the_servers_trial_keeps_out_a_module_whose_import_initialises_cuda(tmp_path):
    """A module that initialises CUDA at import (as TransformerEngine's did): the trial says
    no, the server does not import it, and its forks still use CUDA."""
    (tmp_path / "kw_initialises_cuda.py").write_text("import torch\ntorch.cuda.init()\n")
    r = serve_and_fork(
        f'os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"\nsys.path.insert(0, "{tmp_path}")',
        'from benchmarks.common import server_import_trial, TRIAL_OK\n'
        'assert server_import_trial("kw_initialises_cuda") != TRIAL_OK, "the trial let it in"\n'
        'assert "kw_initialises_cuda" not in sys.modules\n'
        'assert not torch.cuda.is_initialized(), "the trial initialised CUDA in the server"')
    assert r.returncode == 0 and "child 0" in r.stdout, (r.stdout + r.stderr)[-2000:]


# Liger Kernel and peft as the GPU machines' image holds them beside torchao and transformers
# (the versions scripts/device-env.sh installs and the lent machines showed).
LIGER_AND_PEFT = ("liger-kernel==0.8.5", "peft==0.22.0")


@pytest.fixture(scope="module")
def liger_and_peft(tmp_path_factory):
    """Where Liger Kernel and peft are not installed (they are on the GPU machines), a folder
    holding them, installed without their dependencies (this environment has torch, triton,
    transformers and torchao); None where they are."""
    if all(importlib.util.find_spec(m) for m in ("liger_kernel", "peft")):
        return None
    target = tmp_path_factory.mktemp("liger-peft")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--retries", "1", "--timeout", "30", "--target", str(target),
                        *LIGER_AND_PEFT], capture_output=True, text=True, timeout=600)
    if r.returncode:
        pytest.skip(f"pip could not install {' '.join(LIGER_AND_PEFT)}: {r.stderr[-300:]}")
    return target


def test_liger_reaches_torchao_through_peft_and_the_server_imports_it_without(
        liger_and_peft):
    """What links Liger's import to CUDA on a GPU machine, on this CPU with the real
    libraries: where peft is installed, importing Liger's RoPE imports torchao (whose
    mx_formats asks the device at import, on a GPU); imported as the server imports it
    (without the modules its variant declares), neither peft nor torchao is imported, and
    peft imports as before afterwards."""
    code = textwrap.dedent("""
        import os, sys
        sys.path.insert(0, os.getcwd())
        import torch
        from benchmarks import common
        from kernelwatch.workloads.rope import spec
        without = spec.VARIANTS["liger"].server_import_without if sys.argv[1:] else ()
        with common._absent(without):
            import liger_kernel.ops.rope
        print("torchao:", "torchao" in sys.modules, "peft:", "peft" in sys.modules)
        import peft  # noqa: F401
    """)
    env = dict(os.environ)
    if liger_and_peft is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(liger_and_peft),
                                                          env.get("PYTHONPATH")]))
    seen = {}
    for how, args in (("bare", []), ("as the server", ["server"])):
        r = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        seen[how] = r.stdout.strip().splitlines()[-1]
    assert seen == {"bare": "torchao: True peft: True",
                    "as the server": "torchao: False peft: False"}
