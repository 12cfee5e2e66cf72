"""Compile cost (cold: fresh caches; warm: the on-disk FX graph cache filled) and compile
health (dynamo's counters)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from kernelwatch.errors import KernelwatchError
from kernelwatch.measure.timing import synchronize


@contextlib.contextmanager
def inductor_cache(path: str) -> Iterator[str]:
    """Point inductor's and Triton's on-disk caches at `path` for the duration."""
    keys = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    os.environ["TRITON_CACHE_DIR"] = os.path.join(path, "triton")
    try:
        yield path
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def fresh_cache_dir(kind: str) -> Iterator[str]:
    """A new, empty folder for inductor's and Triton's caches, removed on exit. Its name
    holds this process's id: a benchmark process that asv or a stopped run kills while it
    compiles cannot remove its folder, so each call first removes the folders of processes
    that no longer exist."""
    prefix = f"kernelwatch-{kind}-"
    for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = stale.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-") as d:
        yield d


def first_call_seconds(call: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - t0


def cold_compile_seconds(first_call: Callable[[], object], device: torch.device) -> float:
    """Seconds of the first call of a not-yet-compiled function, with fresh inductor and
    Triton caches so no earlier run's FX graph or kernel can hide the cost.

    Run it in a fresh process (asv gives each benchmark one): in-process caches survive
    `torch._dynamo.reset()` and would make a second measurement look warm.
    """
    with fresh_cache_dir("cold") as d, inductor_cache(d):
        return first_call_seconds(first_call, device)


def warm_compile_seconds(
    first_call: Callable[[], object], prime: Callable[[], object], device: torch.device
) -> float:
    """Seconds of the first call when the on-disk FX graph cache is already warm: what a
    user sees on the second launch of a job. `prime` runs the same compile in a spawned
    child process that fills a fresh cache; this process then compiles against it.
    """
    with fresh_cache_dir("warm") as d, inductor_cache(d):
        _prime(prime)
        return first_call_seconds(first_call, device)


def _die_with_parent() -> None:
    """Linux: end this process when the one that started it ends. asv's forkserver stops a
    benchmark that overruns its timeout with SIGKILL to that process alone; a compile it
    started in a new interpreter would otherwise go on beside the next benchmark."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _run_child(fn: Callable[[], object]) -> object:
    _die_with_parent()
    return fn()


def _prime(prime: Callable[[], object]) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_run_child, args=(prime,))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise KernelwatchError(f"priming the compile cache failed (exit {child.exitcode})")


# A benchmark process forked by asv's forkserver inherits the server's imports, dynamo and
# inductor among them: a first call timed there would leave out what a user's first launch
# pays to import the compiler. The one-time costs are therefore timed in a new interpreter.


def _first_call_of(build: Callable[[], object], method: str, threads: int) -> float:
    _die_with_parent()
    torch.set_num_threads(threads)
    case = build()
    return first_call_seconds(getattr(case, method), case.device)


def first_call_seconds_new_process(build: Callable[[], object], method: str = "run") -> float:
    """Seconds of the first `method()` of the case that `build()` makes, in a new
    interpreter (spawned) with this process's thread count and compile-cache settings:
    whatever this process imported already, the compiler's imports are in the figure, as
    they are in a user's first launch. `build` must pickle (a module-level function or a
    functools.partial of one)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_first_call_of, build, method, torch.get_num_threads()).result()


def cold_compile_seconds_new_process(build: Callable[[], object],
                                     method: str = "run") -> float:
    """cold_compile_seconds of a case's first `method()`, in a new interpreter."""
    with fresh_cache_dir("cold") as d, inductor_cache(d):
        return first_call_seconds_new_process(build, method)


def warm_compile_seconds_new_process(build: Callable[[], object],
                                     prime: Callable[[], object]) -> float:
    """warm_compile_seconds of a case's first call, in a new interpreter."""
    with fresh_cache_dir("warm") as d, inductor_cache(d):
        _prime(prime)
        return first_call_seconds_new_process(build)


@dataclass
class CompileHealth:
    graph_breaks: int
    unique_graphs: int
    recompiles: int


def compile_health(code: object, calls: Sequence[Callable[[], object]]) -> CompileHealth:
    """Dynamo's view of `calls`: graph breaks and unique graphs from its counters (the
    difference across the calls), and recompiles as extra cache entries on `code`, the
    code object of the function that was compiled.
    """
    from torch._dynamo import eval_frame
    from torch._dynamo.utils import counters

    breaks_before = sum(counters["graph_break"].values())
    graphs_before = counters["stats"]["unique_graphs"]
    for call in calls:
        call()
    entries = len(eval_frame._debug_get_cache_entry_list(code))
    return CompileHealth(
        graph_breaks=sum(counters["graph_break"].values()) - breaks_before,
        unique_graphs=counters["stats"]["unique_graphs"] - graphs_before,
        recompiles=max(entries - 1, 0),
    )
