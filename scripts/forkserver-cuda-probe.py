"""Which step of asv's forkserver start touches CUDA on this GPU machine.

The server imports the suite once and forks every benchmark process from it; a CUDA call
there leaves every fork unable to use CUDA (benchmarks/common.py device()). This runs the
server's steps one by one in this process, as asv starts it (`run_server` in argv), and
after each forks a child that reports torch's bad-fork flag and puts a tensor on the GPU;
it also records every call into torch's CUDA bindings (`torch._C._cuda_*`) with the stack
that made it, and times the trial of benchmarks.common.server_import_trial for Liger's
RoPE, as the server imports it (without the modules its variant declares in
`server_import_without`) and bare; then imports it bare here, so the stacks name what in
its import touches CUDA. Run from the repository root on a GPU machine
(scripts/device-history.sh probe).
The bindings are recorded from after `import torch`: a call torch makes while it imports
is not among them (the first step's fork says whether one poisoned it).
"""

import importlib
import os
import pkgutil
import sys
import time
import traceback

sys.argv = ["benchmark.py", "run_server", "benchmarks", "socket"]
sys.path.insert(0, os.getcwd())

import torch  # noqa: E402

calls: list[tuple[str, str]] = []


def record_cuda_bindings() -> None:
    """Wrap each torch._C._cuda_* function to note its name and caller's stack."""
    for name in dir(torch._C):
        function = getattr(torch._C, name)
        if name.startswith("_cuda_") and name != "_cuda_isInBadFork" and callable(function):
            def noted(*args, _name=name, _function=function, **kwargs):
                # the whole chain, importlib's own frames left out: which import led here
                stack = [f for f in traceback.format_stack()[:-1] if "<frozen importlib" not in f]
                calls.append((_name, "".join(stack)))
                return _function(*args, **kwargs)
            setattr(torch._C, name, noted)


def fork_reports() -> str:
    """What a fork of this process finds: torch's bad-fork flag and a tensor on the GPU."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            bad = torch.cuda._is_in_bad_fork()
            try:
                ok = str(float(torch.ones(4, device="cuda").sum()) == 4.0)
            except Exception as exc:  # the finding, not a failure of this script
                ok = f"{type(exc).__name__}: {str(exc)[:100]}"
            os.write(write, f"fork: bad_fork={bad} cuda={ok}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as reader:
        return reader.read().decode()


def step(name: str) -> None:
    mapped = any("libcuda.so" in line for line in open("/proc/self/maps"))
    print(f"{name:<34} initialized={torch.cuda.is_initialized()!s:<5} "
          f"libcuda_mapped={mapped!s:<5} {fork_reports()}; "
          f"bindings called: {sorted({c[0] for c in calls}) or 'none'}", flush=True)


print("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"),
      "PYTORCH_NVML_BASED_CUDA_CHECK", os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"))
record_cuda_bindings()
step("import torch")
import benchmarks  # noqa: E402
import benchmarks.common as common  # noqa: E402

step("import benchmarks.common")
print("NVML count", torch.cuda._device_count_nvml(), "nvml_sees_a_gpu", common.nvml_sees_a_gpu())
step("nvml_sees_a_gpu")
from kernelwatch.workloads.rope import spec as rope_spec  # noqa: E402

liger_without = rope_spec.VARIANTS["liger"].server_import_without
for module, without in (("json", ()), ("liger_kernel.ops.rope", liger_without),
                        ("liger_kernel.ops.rope", ())):
    start = time.perf_counter()
    verdict = common.server_import_trial(module, without)
    print(f"server_import_trial({module}, without={without}) = {verdict!r} "
          f"in {time.perf_counter() - start:.2f} s")
step("the trials")
for info in pkgutil.iter_modules(benchmarks.__path__):
    importlib.import_module(f"benchmarks.{info.name}")
    step(f"import benchmarks.{info.name}")
print(f"the server imported Liger's RoPE: {'liger_kernel.ops.rope' in sys.modules} "
      f"(peft: {'peft' in sys.modules})")
step("the server's imports")
# import Liger again, bare (peft too, where installed): the stacks of its CUDA calls
for name in [m for m in sys.modules if m.split(".")[0] == "liger_kernel"]:
    del sys.modules[name]
start = time.perf_counter()
try:
    importlib.import_module("liger_kernel.ops.rope")
except Exception as exc:
    print("import liger_kernel.ops.rope failed:", exc)
print(f"import liger_kernel.ops.rope here: {time.perf_counter() - start:.2f} s")
step("import liger_kernel.ops.rope")
for name, stack in {name: stack for name, stack in reversed(calls)}.items():
    print(f"--- first call of torch._C.{name}:\n{stack}")
