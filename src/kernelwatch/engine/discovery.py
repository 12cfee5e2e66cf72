"""asv's benchmark discovery, kept for an `existing` environment.

Each `asv run` discovers the suite first: a new process of the environment imports every
benchmark module (torch, the compiler, kernelwatch) and lists the benchmarks, their
parameters and code versions; only then does the forkserver import it all again to measure.
On the H200 that first import is ~12 s of every asv call (docs/findings/gpu-history-h200.md).
For asv's own environments discovery also builds the commit, and stays asv's. For an
`existing` one (a GPU runner's `kernelwatch run --existing`) nothing is built, and what
discovery finds is fixed by what it imports and reads: the benchmark files, the kernelwatch
package the environment imports, the installed distributions, the interpreter and the
KERNELWATCH_ variables (the benchmark timeout is read at import), less those only a
measurement reads. Their hash names a kept discovery; any change to one of them discovers
again. The newest KEEP are kept.

`python -m kernelwatch.engine.discovery` writes results/benchmarks.json from that discovery
without running asv's `run`: what a first `kernelwatch run --existing --dry-run` counts from.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

KEEP = 8
# Set per run or per commit and read only while measuring: no part of what discovery finds.
MEASURING_ONLY = ("KERNELWATCH_COMMIT", "KERNELWATCH_INVENTORY_SPOOL", "KERNELWATCH_MACHINE",
                  "KERNELWATCH_INJECT_SLOWDOWN")

# Run by the environment's interpreter, with its environment variables (so its PYTHONPATH):
# finds the kernelwatch it imports without importing it, and hashes everything above.
KEY_SCRIPT = r"""
import hashlib, importlib.metadata, importlib.util, os, sys
variables = sorted((k, v) for k, v in os.environ.items()
                   if k.startswith("KERNELWATCH_") and k not in sys.argv[2:])
digest = hashlib.sha256(repr((sys.executable, sys.version, sys.path, variables)).encode())
dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
digest.update("\n".join(dists).encode())
spec = importlib.util.find_spec("kernelwatch")
roots = [sys.argv[1]] + list(spec.submodule_search_locations or []) if spec else [sys.argv[1]]
for root in roots:
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as f:
                    digest.update(hashlib.sha256(f.read()).digest())
print(digest.hexdigest())
"""


def _key(benchmark_dir: str, env) -> str | None:
    env_vars = {**os.environ, **env.env_vars}
    try:
        out = env.run(["-c", KEY_SCRIPT, os.path.abspath(benchmark_dir), *MEASURING_ONLY],
                      env=env_vars, dots=False)
    except Exception:  # any failure: discover as asv does, which says what is wrong
        return None
    key = out.strip().splitlines()[-1] if out.strip() else ""
    return key if len(key) == 64 else None


def kept(original: Callable, folder: Path) -> Callable:
    """asv's `Benchmarks._disc_benchmarks`, answering from `folder` for an `existing`
    environment whose discovery inputs are unchanged, and keeping each new answer there."""
    from asv.console import log
    from asv.environment import ExistingEnvironment

    def discover(cls, conf, repo, environments, commit_hashes, check):
        envs = list(environments)
        if check or not envs or not all(isinstance(e, ExistingEnvironment) for e in envs):
            return original(conf, repo, envs, commit_hashes, check)
        key = _key(conf.benchmark_dir, envs[0])
        path = folder / f"{key}.json" if key else None
        if path is not None and path.is_file():
            try:
                found = json.loads(path.read_text())
                if isinstance(found, list) and all(isinstance(b, dict) for b in found):
                    log.info(f"Discovering benchmarks: kept from an earlier run with the "
                             f"same benchmark files, kernelwatch and packages ({path.name})")
                    os.utime(path)  # the newest used: kept longest
                    return found
            except (OSError, ValueError):
                pass  # unreadable: discovered again and written anew
        found = original(conf, repo, envs, commit_hashes, check)
        if path is not None:
            _keep(folder, path, found)
        return found

    return classmethod(discover)


def _keep(folder: Path, path: Path, found: list) -> None:
    """Write `found` whole (a sibling file, then a rename) and drop all but the newest KEEP.
    A folder that cannot be written only costs the next run its discovery."""
    partial = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=folder, suffix=".partial")
        with os.fdopen(fd, "w") as f:
            json.dump(found, f)
        os.replace(partial, path)
        partial = None
        kept_files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in kept_files[:-KEEP]:
            old.unlink()
    except OSError:
        pass
    finally:
        if partial is not None:
            with contextlib.suppress(OSError):
                os.remove(partial)


def write_benchmarks(config: Path, python: str, commit: str, cache: Path) -> None:
    """Discover the suite in the `existing` environment `python` (or take a kept discovery
    from `cache`) and write the results folder's benchmarks.json, as asv's first run would,
    whole or not at all (a run beside it reads the file). Run in the repository with the
    run's environment variables (main below)."""
    from asv import environment
    from asv.benchmarks import Benchmarks
    from asv.config import Config
    from asv.repo import get_repo

    conf = Config.load(str(config))
    envs = list(environment.get_environments(conf, [f"existing:{python}"]))
    discover = kept(Benchmarks._disc_benchmarks, cache).__func__
    found = Benchmarks(conf, discover(Benchmarks, conf, get_repo(conf), envs, [commit], False))
    results = Path(conf.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=results, prefix=".benchmarks-") as partial:
        conf.results_dir = partial
        found.save()
        os.replace(Path(partial) / "benchmarks.json", results / "benchmarks.json")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m kernelwatch.engine.discovery",
        description="Write results/benchmarks.json from asv's discovery in an `existing` "
                    "environment (what `kernelwatch run --existing --dry-run` counts from).")
    parser.add_argument("--config", required=True, type=Path, help="asv's config file")
    parser.add_argument("--python", required=True, help="the environment's interpreter")
    parser.add_argument("--commit", required=True, help="the commit the run files under")
    parser.add_argument("--cache", required=True, type=Path, help="the kept discoveries")
    args = parser.parse_args(argv)
    write_benchmarks(args.config, args.python, args.commit, args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
