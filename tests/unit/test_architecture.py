"""The layering docs/architecture.md states, checked on the import graph of src/kernelwatch
(every `import` and `from ... import`, at any depth of a module, read with ast)."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from ..conftest import REPO

PACKAGE = REPO / "src" / "kernelwatch"
# A module's layer is its first name under kernelwatch: its folder (engine/run.py: engine),
# or itself for the modules at the top (cli.py, environment.py, ...).
ENGINE = {"engine", "libraries"}
MEASURING = {"measure", "environment", "inventory"}

def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    """{module: the modules it imports (kernelwatch's, and the top-level name of others)}."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name, found = module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names
                          if node.module.startswith("kernelwatch")}
        graph[name] = found
    return graph


def short(module: str) -> str:
    return module.removeprefix("kernelwatch.")


def test_the_layers_import_only_what_they_may():
    graph = imports()
    known = set(graph)
    problems = []
    for module, found in sorted(graph.items()):
        layer = short(module).split(".")[0]
        # the layers of the kernelwatch modules it imports, and the other packages it imports
        uses = {short(m).split(".")[0] for m in found if m in known} - {layer}
        tops = {m.split(".")[0] for m in found}
        if layer not in ("cli", "commands") and uses & {"cli", "commands"}:
            problems.append(f"{module} imports the command line")
        if layer in ENGINE and uses & {"measure", "report"}:
            problems.append(f"{module} (engine) imports measure or report")
        if layer == "libraries" and "engine" in uses:
            problems.append(f"{module} (a library under test) imports the run engine")
        if layer == "results" and uses & (ENGINE | {"report", "measure"}):
            problems.append(f"{module} (results) imports the engine, report or measure")
        if layer == "regression" and uses & (ENGINE | {"report"}):
            problems.append(f"{module} (regression check) imports the engine or report")
        if layer in MEASURING and (tops & {"asv", "asv_runner"} or uses & (ENGINE | {"report"})):
            problems.append(f"{module} (measuring) imports asv, the engine or report")
        if layer == "report" and ("torch" in tops or uses & (ENGINE | {"measure"})):
            problems.append(f"{module} (report) imports torch, the engine or measure")
        if layer == "workloads" and ("asv" in tops or "report" in uses):
            problems.append(f"{module} (workload) imports asv or report")
        if "benchmarks" in tops:
            problems.append(f"{module} imports benchmarks/ (use benchmark_classes.load)")
    assert not problems, "\n".join(problems)


def test_no_import_cycles_at_module_level():
    """Module-level imports only (a function-level import is how a cycle is broken on
    purpose, and none is needed)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        found = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                    node.module.startswith("kernelwatch"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("kernelwatch")}
        graph[module_name(path)] = found & {module_name(p) for p in PACKAGE.rglob("*.py")}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(" -> ".join([*stack[stack.index(m):], m]))
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n != m and not m.startswith(n + "."):  # a package's own submodules
                visit(n)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, "\n".join(cycles)


# What runs where torch is not installed: the command line, publishing, the report, the
# history, the run engine's planning, and every workload's declaration.
TORCH_FREE = ["kernelwatch.cli", "kernelwatch.commands.publish", "kernelwatch.commands.report",
              "kernelwatch.commands.compare", "kernelwatch.commands.history",
              "kernelwatch.commands.env", "kernelwatch.report.site", "kernelwatch.engine.run",
              "kernelwatch.engine.planner", "kernelwatch.regression.bisect",
              "kernelwatch.libraries.targets", "kernelwatch.results.history"]


def test_publishing_the_report_and_the_declarations_import_no_torch():
    """Imported (transitively, as Python imports them) in a process where torch, triton,
    transformers and torchao cannot be imported; the report's views and each declaration
    are then used, not only imported."""
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("torch", "triton", "transformers", "torchao"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        for name in {TORCH_FREE!r}:
            importlib.import_module(name)
        from kernelwatch import workloads
        from kernelwatch.report import site
        assert len(site.views()) == len(workloads.WORKLOADS)
        for name in workloads.WORKLOADS:
            spec = workloads.get(name)
            assert spec.quick and spec.variants, name
        print("torch-free")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0 and "torch-free" in r.stdout, r.stderr[-3000:]
