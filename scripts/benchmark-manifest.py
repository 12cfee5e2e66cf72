#!/usr/bin/env python3
"""Write tests/benchmark_manifest.json: every asv benchmark's name, parameters and version,
as asv discovers them. tests/test_benchmark_manifest.py compares the suite with it, so that no
change renames a benchmark, drops a parameter value or changes a version unseen: recorded
history is filed under exactly these. Run it only for a deliberate change (a new benchmark,
a value added to a parameter, a version bumped because results stopped being comparable), and
say why in the commit."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import asv

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "tests" / "benchmark_manifest.json"


def discover(repo: Path = REPO) -> dict:
    """{name: {"params": [...], "param_names": [...], "version": ...}} from asv's own
    discovery of the checkout's benchmarks/."""
    script = Path(asv.__file__).parent / "benchmark.py"
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "discovered.json"
        subprocess.run([sys.executable, str(script), "discover", str(repo / "benchmarks"),
                        str(out)], check=True, cwd=repo)
        found = json.loads(out.read_text())
    return {b["name"]: {"param_names": b["param_names"], "params": b["params"],
                        "version": b["version"]} for b in sorted(found, key=lambda b: b["name"])}


if __name__ == "__main__":
    MANIFEST.write_text(json.dumps(discover(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {MANIFEST}")
