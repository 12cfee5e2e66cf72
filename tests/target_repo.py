"""A local git repository of llm-compressor made from its released source distributions, for
the target and bisect tests: the sdists of RELEASES committed in order (each tagged with its
version, which setuptools_scm reads back at build time), then OWN_COMMITS on top, one of which
makes the GPTQ path 6-9x slower on the CPU (its eager column loop spreads each column's error
over the rows one at a time instead of all at once); the others change documentation only.

Also a script, to build the same repository by hand (the README's bisect walk-through):
    python -m tests.target_repo DEST [--sdists DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

RELEASES = ("0.13.0", "0.14.0", "0.14.0.1")
GPTQ = "src/llmcompressor/modifiers/gptq/gptq_quantize.py"
# Generated at build time or by the sdist itself; a source tree does not hold them.
GENERATED = ("PKG-INFO", "src/llmcompressor.egg-info", "src/llmcompressor/version.py")
GITIGNORE = "src/llmcompressor/version.py\n*.egg-info/\nbuild/\ndist/\n__pycache__/\n"

VECTOR_UPDATE = """        W1[:, :, i:] -= error.unsqueeze(-1) * Hinv1[:, i, i:].unsqueeze(1)
"""
# The same arithmetic, element for element (identical results), in 64 small steps per column
# of the tiny layer instead of one: measured here 35-43 -> 331 ms (host venv), 73 -> 459 ms
# (the target's asv environment, a busy machine). Four rows at a time gave only 2.3x in the
# environment, within what a busy 2-core machine does to one process.
CHUNKED_UPDATE = """        # Spread the error row by row, bounding the temporary's size.
        hinv_row = Hinv1[:, i, i:]
        for row in range(W1.shape[-2]):
            W1[:, row, i:] -= error[:, row, None] * hinv_row
"""


def _note(path: str, text: str):
    def change(root: Path) -> None:
        with (root / path).open("a", encoding="utf-8") as f:
            f.write(text)
    return change


def _slow_gptq(root: Path) -> None:
    path = root / GPTQ
    source = path.read_text()
    assert source.count(VECTOR_UPDATE) == 1, "quantize_weight's column update moved"
    path.write_text(source.replace(VECTOR_UPDATE, CHUNKED_UPDATE))


# (subject, change): on top of the last release; the fourth is the slow one.
OWN_COMMITS = (
    ("docs: say where the GPTQ Triton kernel falls back to eager",
     _note("docs/index.md", "\nOn a CPU, GPTQ runs its eager column loop.\n")),
    ("docs: link the GPTQ paper from the README",
     _note("README.md", "\nGPTQ: https://arxiv.org/abs/2210.17323\n")),
    ("docs: mention LLMCOMPRESSOR_DISABLE_GPTQ_TRITON",
     _note("docs/index.md", "\nLLMCOMPRESSOR_DISABLE_GPTQ_TRITON=1 forces the eager loop.\n")),
    ("gptq: spread each column's error row by row", _slow_gptq),
    ("docs: note the CPU timing of the tiny layer",
     _note("docs/index.md", "\nA 64x256 layer quantizes in tens of milliseconds.\n")),
    ("docs: typo in the README",
     _note("README.md", "\n<!-- reviewed -->\n")),
    ("docs: credit the GPTQ authors",
     _note("README.md", "\nGPTQ is by Frantar, Ashkboos, Hoefler and Alistarh.\n")),
)
SLOW_SUBJECT = OWN_COMMITS[3][0]


def download(dest: Path) -> dict[str, Path]:
    """The sdists of RELEASES in `dest` (downloaded where missing): version -> path."""
    dest.mkdir(parents=True, exist_ok=True)
    found = {}
    for version in RELEASES:
        path = dest / f"llmcompressor-{version}.tar.gz"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--no-binary", ":all:", f"llmcompressor=={version}", "-d",
                            str(dest)], check=True)
        found[version] = path
    return found


# The commits are dated in the last days before now, an hour apart: a target's requirements
# resolve from what was uploaded before its build files were replaced
# (kernelwatch.libraries.requirements), so a history dated before the releases it holds
# would ask for packages not yet uploaded.
START = int(time.time()) - 48 * 3600


def _git(root: Path, *args: str, date: int = 0) -> str:
    stamp = f"{START + date * 3600} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
           "GIT_AUTHOR_NAME": "kernelwatch tests", "GIT_AUTHOR_EMAIL": "tests@kernelwatch",
           "GIT_COMMITTER_NAME": "kernelwatch tests",
           "GIT_COMMITTER_EMAIL": "tests@kernelwatch"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make(dest: Path, sdists: dict[str, Path]) -> Path:
    """The repository at `dest` (a new folder), branch main."""
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    n = 0
    for version in RELEASES:
        for child in dest.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        with tarfile.open(sdists[version]) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) < 2:
                    continue
                member.name = str(Path(*parts[1:]))
                tar.extract(member, dest, filter="data")
        for rel in GENERATED:
            p = dest / rel
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        (dest / ".gitignore").write_text(GITIGNORE)
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m", f"llm-compressor {version}", date=n)
        _git(dest, "tag", version)
        n += 1
    for subject, change in OWN_COMMITS:
        change(dest)
        _git(dest, "commit", "-q", "-am", subject, date=n)
        n += 1
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dest", type=Path)
    p.add_argument("--sdists", type=Path, default=Path(".kernelwatch/sdists"))
    args = p.parse_args()
    make(args.dest, download(args.sdists))
    print(_git(args.dest, "log", "--oneline", "--decorate"))


if __name__ == "__main__":
    main()
