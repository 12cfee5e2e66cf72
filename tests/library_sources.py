"""One module of a library's source tree at a commit of its git history, imported in this
interpreter without the package's own `__init__` chain: for calling a historical form of a
function (llm-compressor's `quantize_weight` at each release) with real sources, where
importing the whole historical package would drag in its every other dependency.

The commit's tree under `src_dir` is exported once (`git archive`) to a folder; `load`
imports `module` from it, each ancestor package an empty package whose `__path__` is its
folder there (so `from llmcompressor.observers.base import Observer` finds the commit's own
file), except the packages in `run_init`, whose `__init__.py` is executed as the library
would (observers register themselves there). Everything is undone on exit.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path


def export(repo: Path, commit: str, src_dir: str, dest: Path) -> Path:
    """The commit's `src_dir` exported under `dest` (once); the folder holding the packages."""
    root = dest / commit.replace("/", "_")
    if not (root / src_dir).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "--format=tar", commit, src_dir],
                                 cwd=repo, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root / src_dir


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path, top: str, run_init: set[str]) -> None:
        self.root, self.top, self.run_init = root, top, run_init

    def find_spec(self, name, path=None, target=None):
        if name != self.top and not name.startswith(self.top + "."):
            return None
        where = self.root.joinpath(*name.split("."))
        if where.is_dir():
            init = where / "__init__.py"
            if name in self.run_init and init.exists():
                return importlib.util.spec_from_file_location(
                    name, init, submodule_search_locations=[str(where)])
            spec = importlib.machinery.ModuleSpec(name, _EmptyPackage(), is_package=True)
            spec.submodule_search_locations = [str(where)]
            return spec
        file = where.with_suffix(".py")
        if file.exists():
            return importlib.util.spec_from_file_location(name, file)
        return None


class _EmptyPackage(importlib.abc.Loader):
    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        module.__path__ = list(module.__spec__.submodule_search_locations)


@contextlib.contextmanager
def load(root: Path, module: str, run_init: tuple[str, ...] = ()) -> Iterator[types.ModuleType]:
    """`module` imported from the tree at `root` (see the module's docstring)."""
    top = module.split(".")[0]
    saved = {k: v for k, v in sys.modules.items() if k == top or k.startswith(top + ".")}
    for k in saved:
        del sys.modules[k]
    finder = _Finder(root, top, set(run_init))
    sys.meta_path.insert(0, finder)
    try:
        yield importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)
