"""A damaged file beside the results ends in one line that names it and the fix, never a
traceback: skipped where it only informs (a kernel inventory, a fidelity run), refused as
publish refuses it where the rows are built from it. The file itself is never touched."""

import json

import pytest

from kernelwatch import inventory_file

from ..conftest import write_asv_results

COMMITS = ["ab" * 20, "cd" * 20]


@pytest.mark.parametrize("content,why", [
    ("[1]", "not an object"),
    ('{"rope(tiny)": 1}', "rope(tiny): kernels is not a list of names"),
    ("{oops", "not valid JSON"),
])
def test_a_damaged_kernel_inventory_is_named_and_skipped(tmp_path, capsys, content, why):
    write_asv_results(tmp_path, "box", COMMITS, "rope")
    results = tmp_path / "results"
    good = results / "box" / "cdcdcdcd-env.kernels"
    good.write_text(json.dumps({"rope(tiny)": {"kernels": ["triton_poi_fused_0"]}}))
    bad = results / "box" / "abababab-env.kernels"
    bad.write_text(content)

    loaded = inventory_file.load_all(results, "box")

    assert loaded == {(COMMITS[1], "env", "rope(tiny)"): {"kernels": ["triton_poi_fused_0"]}}
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"kernelwatch: skipping unreadable kernel inventory {bad}: {why}")
    assert "Move it out of results/" in line
    assert bad.read_text() == content
