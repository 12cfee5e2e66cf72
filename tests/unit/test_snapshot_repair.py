"""The snapshot of the files a run may rewrite, on real asv result files and no asv run: a
file left truncated is put back, a new unreadable one removed, and the machine's file kept
with the results it describes."""

import json

from kernelwatch.engine.snapshot import Snapshot

from ..conftest import write_case_results

CASE = {"shape": "tiny", "variant": "eager"}


def recorded(tmp_path):
    results = tmp_path / "results"
    path = write_case_results(results, "box", "a" * 40, "env", CASE,
                              {"w.C.track_time": [1e-3, 2e-3]})
    return results, path, tmp_path / "home" / ".asv-machine.json"


def test_a_truncated_file_is_put_back_and_a_new_unreadable_one_removed(tmp_path):
    results, path, machine_file = recorded(tmp_path)
    before = path.read_bytes()
    snap = Snapshot.take(results, "box", machine_file)
    path.write_bytes(before[: len(before) // 2])  # a killed write
    new = path.with_name("bbbbbbbb-env.json")
    new.write_text('{"results": {')
    lines = snap.repair()
    assert path.read_bytes() == before and not new.exists()
    assert any("restored as it was" in line for line in lines)
    assert any("removed (left unreadable" in line for line in lines)


def test_the_machine_file_stays_with_a_result_saved_before_the_run_was_cut(tmp_path):
    """No asv call finished, but the benchmark loop saved a combination: the machine file
    asv wrote is the one that result belongs with. With nothing measured, it goes back."""
    results, path, machine_file = recorded(tmp_path)
    machine = results / "box" / "machine.json"
    snap = Snapshot.take(results, "box", machine_file)
    machine.write_text(json.dumps({"machine": "box", "version": 1, "gpu": "H200"}))
    snap.repair()
    assert "H200" not in machine.read_text()  # nothing measured: as it was

    snap = Snapshot.take(results, "box", machine_file)
    machine.write_text(json.dumps({"machine": "box", "version": 1, "gpu": "H200"}))
    data = json.loads(path.read_text())
    data["results"]["w.C.track_time"][0] = [3e-3]  # a combination measured and saved whole
    path.write_text(json.dumps(data))
    snap.repair()
    assert "H200" in machine.read_text()
