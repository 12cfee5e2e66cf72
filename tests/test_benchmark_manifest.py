"""Recorded history is filed under each benchmark's name, parameters and version: the suite
asv discovers must match tests/benchmark_manifest.json exactly. A deliberate change (a new
benchmark, a value added to a parameter, a version bumped because results stopped being
comparable) updates the manifest with scripts/benchmark-manifest.py, in the same commit."""

import importlib.util

from .conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("manifest", REPO / "scripts" /
                                                  "benchmark-manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_keeps_its_name_params_and_version():
    import json

    script = load_script()
    recorded = json.loads(script.MANIFEST.read_text())
    found = script.discover()
    gone = sorted(set(recorded) - set(found))
    new = sorted(set(found) - set(recorded))
    changed = sorted(n for n in set(recorded) & set(found) if recorded[n] != found[n])
    assert not (gone or new or changed), (
        f"gone: {gone}; new: {new}; changed: "
        + "; ".join(f"{n}: {recorded[n]} -> {found[n]}" for n in changed)
        + ". A renamed benchmark, a removed parameter value or a changed version orphans "
        "recorded results; if the change is deliberate, run scripts/benchmark-manifest.py")
