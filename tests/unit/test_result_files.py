"""What results/ may hold (kernelwatch.results.files): asv's layout and shape, plain names; and
old parameter values read under their new names, in kernelwatch's rows and in the copy asv
publishes from."""

import json

import pytest

from kernelwatch.results import files as result_files
from kernelwatch.results import rows as result_rows

from ..conftest import write_asv_results

BENCH = "llama_layer.LayerTime.track_time"


def llama_results(root, variants):
    """A result file of the Llama layer's time recorded under `variants`' names."""
    write_asv_results(root, "m", ["ab" * 20], "bench")
    path = root / "results" / "m" / "abababab-env.json"
    data = json.loads(path.read_text())
    params = [["'tiny'"], ["'128'"], ["'torch'"], ["'forward'"], [f"'{v}'" for v in variants]]
    data["results"] = {BENCH: [[1e-3 * (i + 1) for i in range(len(variants))], params, "2"]}
    path.write_text(json.dumps(data))
    listed = {"version": 2, BENCH: {"name": BENCH, "param_names": [
        "shape", "seq_len", "backend", "pass", "variant"], "params": params, "type": "track",
        "unit": "seconds", "version": "2"}}
    (root / "results" / "benchmarks.json").write_text(json.dumps(listed))
    return path


def test_old_variant_names_read_under_the_new_ones(tmp_path):
    llama_results(tmp_path, ["eager", "full", "full-reduce-overhead"])
    rows = result_rows.load(tmp_path / "results")
    assert sorted(r.params["variant"] for r in rows if r.benchmark == BENCH) == [
        "compile", "compile-reduce-overhead", "eager"]
    copy = tmp_path / "copy"
    assert result_files.checked_copy(tmp_path / "results", copy) == []
    data = json.loads((copy / "m" / "abababab-env.json").read_text())
    assert data["results"][BENCH][1][4] == ["'eager'", "'compile'", "'compile-reduce-overhead'"]
    # results/ itself is never rewritten.
    assert "'full'" in (tmp_path / "results" / "m" / "abababab-env.json").read_text()


@pytest.mark.parametrize("rel,why", [
    ("m/../../x.json", "not a file asv writes"),
    ("m/notes.txt", "not a file asv writes"),
    ("m/abababab-env.kernels", "kernels is not a list of names"),
])
def test_files_outside_the_layout_or_shape_are_refused(tmp_path, rel, why):
    write_asv_results(tmp_path, "m", ["ab" * 20], "bench")
    root = tmp_path / "results"
    if rel.endswith(".kernels"):
        (root / rel).write_text(json.dumps({"w(a)": {"kernels": "not a list"}}))
    with pytest.raises(result_files.Refused, match=why):
        if not (root / rel).exists() and "notes" in rel:
            (root / rel).write_text("x")
        result_files.check_file(root, rel)


def test_a_machine_name_is_never_a_path():
    for bad in ("../x", "/abs", ".", "a/b", "", "-rf"):
        with pytest.raises(result_files.Refused):
            result_files.check_machine_name(bad)
    assert result_files.check_machine_name("gpu-h100.runner_2") == "gpu-h100.runner_2"


def test_a_corrupt_file_of_a_library_s_results_is_to_be_moved_out_of_its_own_folder(tmp_path):
    """results-DIST/ holds a --target library's results: the fix names that folder (it
    said "move them out of results/")."""
    from kernelwatch.errors import KernelwatchError
    from kernelwatch.results import rows as result_rows

    library = tmp_path / "results-llmcompressor"
    (library / "box").mkdir(parents=True)
    (library / "box" / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    bad = library / "box" / "deadbeef-env.json"
    bad.write_text('{"version": 2, "results": {')
    with pytest.raises(KernelwatchError, match="Move them out of results-llmcompressor/ "):
        result_rows.load(library)
    # As the planner words it, from the path alone.
    assert "Move them out of results-llmcompressor/ " in str(
        result_rows.unreadable([f"{bad} (truncated)"]))
