"""Stand-in for actions/upload-artifact and actions/download-artifact when the workflows run
under act (tests/test_act.py): the pinned v7/v8 bundles rebuild from their source, but act
0.2.89's artifact server refuses their CreateArtifact request (`unknown field "mime_type"`),
so these copy the files to and from a folder (KW_ACT_ARTIFACTS) the way the real actions
store and restore them: an upload keeps the paths below the least common ancestor of its
search paths (each pattern up to its first wildcard, as @actions/glob has them), and a
download with merge-multiple lays every matching artifact into one folder.

Usage (from the stand-in action.yml files): artifacts.py upload NAME PATHS IF_NO_FILES
                                             artifacts.py download PATTERN DEST MERGE
"""

from __future__ import annotations

import fnmatch
import glob
import os
import shutil
import sys
from pathlib import Path


def _search_path(pattern: str) -> Path:
    parts = Path(pattern).parts
    first_wildcard = next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))
    literal = parts[:first_wildcard]
    return Path(*literal).resolve() if literal else Path.cwd()


def upload(name: str, patterns: str, if_no_files: str) -> int:
    files: list[Path] = []
    searched = [p for p in (line.strip() for line in patterns.splitlines()) if p]
    for pattern in searched:
        for match in sorted(glob.glob(pattern)):
            path = Path(match).resolve()
            files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    if not files:
        print(f"upload-artifact stand-in: no files match {patterns!r}")
        return 1 if if_no_files == "error" else 0
    roots = [_search_path(p) for p in searched]
    root = Path(os.path.commonpath(roots))
    if len(files) == 1 and files[0] == root:  # one file named as it is: kept without folders
        root = root.parent
    dest = Path(os.environ["KW_ACT_ARTIFACTS"]) / name
    for f in files:
        (dest / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest / f.relative_to(root))
    print(f"upload-artifact stand-in: {len(files)} files as {name}")
    return 0


def download(pattern: str, dest: str, merge: str) -> int:
    store = Path(os.environ["KW_ACT_ARTIFACTS"])
    names = sorted(p.name for p in store.iterdir() if fnmatch.fnmatch(p.name, pattern)) \
        if store.is_dir() else []
    for name in names:
        target = Path(dest or ".") / ("" if merge == "true" or len(names) == 1 else name)
        shutil.copytree(store / name, target, dirs_exist_ok=True)
    print(f"download-artifact stand-in: {', '.join(names) or 'nothing'} matched {pattern!r}")
    return 0


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    sys.exit(upload(*rest) if command == "upload" else download(*rest))
