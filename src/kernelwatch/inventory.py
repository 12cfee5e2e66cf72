"""The kernels one call launches: their count, their names in order, and a hash of the code
inductor generated for them. When a commit stops inductor fusing two operations, the time may
move by less than the noise, but the count goes from 1 to 2 and the names say what split.

- Compiled code: read from the modules inductor wrote (`PyCodeCache`) while the call ran:
  each module's `call` launches its kernels in order (a generated C++ or Triton kernel, or an
  extern kernel such as `extern_kernels.mm`). The digest is over those modules' code, so any
  change of the generated code changes it, also when the count stays. Comments are left out:
  inductor writes each Triton kernel's path in the compile cache there, another folder in
  each run with fresh caches, which made every such run's code look new. Files recorded
  before hold `code_hash`, over the source with its comments; it is compared only with
  another `code_hash`.
- Eager code (nothing generated): the profiler's list of what ran (GPU kernels on CUDA,
  top-level aten operators on the CPU); no digest.
- Launch: for each of inductor's Triton kernels, the launch configuration (block sizes,
  warps, stages) its autotuning picked on the first run. The pick can differ between two
  processes of one commit (same code, another config, another time), so it is kept to
  explain such a change rather than take it for the code's.
- Guards: what dynamo installed for the frames the call compiled (its compilation metrics'
  guard counts). Each call checks them before it runs, so new guards are host time per call.
Counting only: nothing here times (that is kernelwatch.measure's job).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reading and comparing inventories (the report) needs no torch
    import torch


def short_name(name: str, width: int = 60) -> str:
    """A kernel's name for a table: no `void`, ATen's namespaces or argument list; a name
    still over `width` is cut, with a hash of the whole name, so that two instantiations of
    one template (elementwise_kernel<...copy...>, elementwise_kernel<...mul...>) stay apart."""
    short = name.removeprefix("void ").replace("(anonymous namespace)::", "")
    short = short.replace("at::native::", "").split("(")[0]
    if len(short) <= width:
        return short
    return f"{short[:width - 8]}..{hashlib.sha256(name.encode()).hexdigest()[:6]}"


@dataclass
class Inventory:
    kernels: list[str] = field(default_factory=list)  # in launch order, one call
    code_digest: str = ""  # code_digest() of the generated code, "" where none was
    source: str = "profiler"  # "inductor": from the generated code; "profiler": eager
    guards: int | None = None  # dynamo's guards on what the call compiled; None: none compiled
    launch: dict[str, str] = field(default_factory=dict)  # Triton kernel -> picked config

    @property
    def count(self) -> int:
        return len(self.kernels)

    def as_dict(self) -> dict:
        found = {"kernels": list(self.kernels), "code_digest": self.code_digest,
                 "source": self.source}
        if self.guards is not None:
            found["guards"] = self.guards
        if self.launch:
            found["launch"] = dict(self.launch)
        return found


def _compilations() -> list:
    from torch._dynamo.utils import get_compilation_metrics

    return list(get_compilation_metrics())


def _generated_modules() -> list:
    from torch._inductor.codecache import PyCodeCache

    return list(PyCodeCache.modules)


def kernels_of_source(source: str) -> list[str]:
    """The kernels a generated module's `call` launches, in order: names bound at module
    level to `async_compile.*(...)` and called (or `.run(...)` for Triton), `extern_kernels.*`
    calls, and operators inductor left to ATen (`torch.ops.aten.*(...)`, e.g. attention).
    Where inductor partitioned the graph for CUDA graphs, `call` runs
    `self.partitions[i](...)` and the kernels are in the module's `partition_i` functions:
    each is read where `call` runs it."""
    tree = ast.parse(source)
    defined = set()
    functions = {}
    partitions: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "async_compile"):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(func, ast.Name) and func.id == "Runner":
                for kw in node.value.keywords:
                    if kw.arg == "partitions" and isinstance(kw.value, ast.List):
                        partitions = [e.id for e in kw.value.elts if isinstance(e, ast.Name)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "call"]

    def launched(node: ast.Call, in_partition: bool) -> list[str]:
        """The kernels one call expression launches ([] for other calls)."""
        f = node.func
        if isinstance(f, ast.Name) and f.id in defined:
            return [f.id]
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if f.value.id in defined and f.attr == "run":
                return [f.value.id]
            if f.value.id == "extern_kernels":
                return [f"extern_kernels.{f.attr}"]
        dotted = ast.unparse(f)
        if dotted.startswith("torch.ops."):
            return [".".join(dotted.split(".")[2:4])]  # torch.ops.aten.op.default -> aten.op
        # self.partitions[i](...): the partition function's kernels, where call runs it
        if (not in_partition and isinstance(f, ast.Subscript)
                and ast.unparse(f.value) == "self.partitions"
                and isinstance(f.slice, ast.Constant)):
            i = f.slice.value
            name = partitions[i] if i < len(partitions) else f"partition_{i}"
            if name in functions:
                return launched_by(functions[name], in_partition=True)
        return []

    def launched_by(fn: ast.FunctionDef, in_partition: bool = False) -> list[str]:
        found = [(node.lineno, node.col_offset, launched(node, in_partition))
                 for node in ast.walk(fn) if isinstance(node, ast.Call)]
        return [name for _, _, names in sorted(found) for name in names]

    return [name for fn in calls for name in launched_by(fn)]


def _inductor_cache_dir() -> str:
    """Inductor's compile cache folder ("" where this torch has no such function)."""
    try:  # torch >= 2.6
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:
        try:  # torch 2.5
            from torch._inductor.runtime.runtime_utils import cache_dir
        except ImportError:
            return ""
    return cache_dir()


def code_digest(sources: list[str], cache_dir: str = "") -> str:
    """sha256 (16 hex digits) of generated modules' code: comments dropped (`ast.unparse`)
    and `cache_dir` (the compile cache's folder) written as `<cache>` wherever the code
    names it, so two runs with fresh caches that generate the same code agree."""
    code = [ast.unparse(ast.parse(source)) for source in sources]
    if cache_dir:
        code = [c.replace(cache_dir, "<cache>") for c in code]
    return hashlib.sha256("\n".join(code).encode()).hexdigest()[:16]


def launch_of(kernel: object) -> str:
    """The launch configuration an inductor Triton kernel (a `CachingAutotuner`) runs with,
    e.g. "XBLOCK=1024 num_warps=4 num_stages=1": after its first run autotuning has left
    it one launcher. "" for any other kernel (C++, extern) or one not yet down to one."""
    launchers = getattr(kernel, "launchers", None)
    config = getattr(launchers[0], "config", None) if launchers and len(launchers) == 1 else None
    if config is None:
        return ""
    sizes = [f"{k}={v}" for k, v in sorted(getattr(config, "kwargs", {}).items())]
    return " ".join([*sizes, f"num_warps={config.num_warps}",
                     f"num_stages={config.num_stages}"])


def of_first_call(call: Callable[[], object], device: torch.device) -> Inventory:
    """Run `call` once (its first call, when it compiles) and list what it launched: from
    the modules inductor generated or loaded during the call, else from the profiler on a
    second call."""
    import torch

    before = {id(m) for m in _generated_modules()}
    compiled_before = {id(m) for m in _compilations()}
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    new = [m for m in _generated_modules() if id(m) not in before]
    frames = [m for m in _compilations() if id(m) not in compiled_before]
    guards = sum(m.guard_count or 0 for m in frames) if frames else None
    read = [(m, open(m.__file__).read()) for m in new if getattr(m, "__file__", None)]
    read = [(m, s) for m, s in read if "def call" in s]
    if read:
        digest = code_digest([s for _, s in read], _inductor_cache_dir())
        kernels, launch = [], {}
        for index, (module, source) in enumerate(read):
            names = kernels_of_source(source)
            kernels += names
            for name in dict.fromkeys(names):  # a kernel launched twice has one config
                if picked := launch_of(getattr(module, name, None)):
                    # one name in two graphs (forward, backward): the second by its graph
                    launch[name if name not in launch else f"{name}@{index}"] = picked
        return Inventory(kernels, digest, "inductor", guards, launch)
    found = of_profiled_call(call, device)
    found.guards = guards
    return found


def of_profiled_call(call: Callable[[], object], device: torch.device) -> Inventory:
    """What one call of `call` ran, by the profiler: GPU kernels on CUDA, else the aten
    operators called from Python (not their internal calls)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    if device.type == "cuda":
        names = [e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    else:
        names = [e.name for e in events if e.name.startswith("aten::")
                 and not _inside_aten(e)]
    return Inventory(names, "", "profiler")


def _inside_aten(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def _field(inventory: Inventory | dict, name: str, default: object) -> object:
    """A field of an inventory, measured now (Inventory) or read from a .kernels file (its
    as_dict, where an absent field has `default`)."""
    if isinstance(inventory, Inventory):
        return getattr(inventory, name, default)
    return inventory.get(name, default)


def _codes(old: Inventory | dict, new: Inventory | dict) -> tuple[str, str] | None:
    """The two inventories' code digests ("" where nothing was generated), or None where
    only one holds a `code_digest` (the other, recorded before, a `code_hash` taken with
    the comments): then whether the code changed is not known."""
    old_d, new_d = _field(old, "code_digest", None), _field(new, "code_digest", None)
    if old_d is not None and new_d is not None:
        return old_d, new_d
    if old_d is not None or new_d is not None:
        return None
    return _field(old, "code_hash", ""), _field(new, "code_hash", "")


def new_guards(old: Inventory | dict, new: Inventory | dict) -> str:
    """In words, how the guards changed ("2 new guards", "3 guards fewer"; "" when they did
    not, or either inventory has no count)."""
    before, after = _field(old, "guards", None), _field(new, "guards", None)
    if before is None or after is None or before == after:
        return ""
    n = abs(after - before)
    return (f"{n} new guard{'s' if n != 1 else ''}" if after > before
            else f"{n} guard{'s' if n != 1 else ''} fewer")


def launch_difference(old: Inventory | dict, new: Inventory | dict,
                      names: Callable[[list[str]], str] = "; ".join) -> str:
    """In words, which kernels autotuning launched differently ("" when none did), e.g.
    "autotuning picked another launch: triton_poi_fused_0 XBLOCK=512 num_warps=8 num_stages=1
    (was XBLOCK=1024 num_warps=4 num_stages=1)". `names` writes the list (markdown bounds
    and escapes it)."""
    before, after = _field(old, "launch", {}), _field(new, "launch", {})
    moved = [f"{k} {after[k]} (was {before[k]})" for k in after
             if k in before and before[k] != after[k]]
    return "autotuning picked another launch: " + names(moved) if moved else ""


def only_launch_moved(old: Inventory | dict | None, new: Inventory | dict | None) -> bool:
    """Whether two inventories of a case hold the same kernels of the same generated code
    with the same guards, and autotuning launched at least one of them differently: then the
    launch is the one thing of the code that moved."""
    if not old or not new:
        return False
    codes = _codes(old, new)
    same = codes is not None and codes[0] == codes[1] and all(
        _field(old, f, None) == _field(new, f, None) for f in ("kernels", "guards"))
    return same and bool(launch_difference(old, new))


def difference(old: Inventory | dict, new: Inventory | dict,
               names: Callable[[list[str]], str] = ", ".join) -> str:
    """In words, what changed between two inventories ("" when nothing did): the count and
    the kernels that appeared or went, e.g. "3 kernels, was 1: lost fusion of cpp_fused_...".
    `names` writes a list of kernel names (markdown bounds and escapes them)."""
    old_k, new_k = _field(old, "kernels", []), _field(new, "kernels", [])
    if old_k == new_k:
        codes = _codes(old, new)
        launch = launch_difference(old, new, names)
        if codes is not None and codes[0] != codes[1]:
            return "; ".join(filter(None, ["same kernels, generated code changed", launch]))
        return launch
    old_set, new_set = set(old_k), set(new_k)
    gone = [k for k in old_k if k not in new_set]
    came = [k for k in new_k if k not in old_set]
    head = f"{len(new_k)} kernel{'s' if len(new_k) != 1 else ''}, was {len(old_k)}"
    words = []
    if len(new_k) > len(old_k) and gone:
        words.append(f"lost fusion of {names(gone)}")
    elif gone:
        words.append(f"gone: {names(gone)}")
    if came:
        words.append(f"new: {names(came)}")
    return head + (": " + "; ".join(words) if words else "")
