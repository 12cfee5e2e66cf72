"""A damaged file beside the results ends in one line that names it and the fix, never a
traceback: skipped where it only informs (a kernel inventory, a fidelity run), refused as
publish refuses it where the rows are built from it. The file itself is never touched."""

import json

import pytest

from kernelwatch import inventory_file
from kernelwatch.commands import report
from kernelwatch.errors import KernelwatchError
from kernelwatch.regression import fidelity
from kernelwatch.results import rows as result_rows

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


def fidelity_file(repo, name, machine, runs):
    """A saved `kernelwatch fidelity` run of one series, as fidelity.save writes it."""
    target = {"workload": "rope", "cls": "RopeTime", "track": "track_time",
              "params": ["tiny"], "runs": runs, "skipped": "", "seconds": 1.0}
    path = fidelity.fidelity_dir(repo) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "date": 1.0, "environment": {},
                                "targets": [target]}))
    return path


def steady_runs(count=4):
    return [{"0.0": [1e-3 * (1 + i / 1000) for i in range(5)],
             "0.05": [1.05e-3 * (1 + i / 1000) for i in range(5)]} for _ in range(count)]


@pytest.mark.parametrize("runs,why", [
    ([{"0.05": [1e-3]}, {"0.05": [1e-3]}], 'run 1 has no samples as it is ("0.0")'),
    ([{"0.0": []}, {"0.0": []}], "run 1 at slowdown 0.0 is not a list of positive times"),
    ([{"0.0": [1e-3]}, {"0.0": [1e-3], "0.05": [1e-3]}], "run 2 has other slowdowns"),
    ([{"0.0": [1e-3]}], "1 runs, where a series needs 2 or more"),
])
def test_a_fidelity_file_analyse_cannot_use_is_named_and_skipped(tmp_path, capsys, runs, why):
    """Another machine's damaged file stops nothing (it crashed compare, fidelity --show,
    publish and bisect with KeyError or StatisticsError); this machine's good one counts."""
    from kernelwatch.commands import fidelity as fidelity_command
    from kernelwatch.commands import publish

    bad = fidelity_file(tmp_path, "other-20250101-000000.json", "other", runs)
    fidelity_file(tmp_path, "box-20250101-000000.json", "box", steady_runs())
    before = bad.read_text()

    assert set(fidelity.thresholds(tmp_path)) == {"box"}
    assert set(publish.fidelity_for_site(tmp_path)["fidelity"]) == {"box"}
    assert fidelity_command.show(tmp_path, "box") == 0
    with pytest.raises(KernelwatchError, match="no fidelity runs for machine 'other'"):
        fidelity_command.show(tmp_path, "other")

    # The same line each time the file is read, and nothing else.
    [line] = {ln for ln in capsys.readouterr().err.splitlines()}
    assert line.startswith(f"kernelwatch: skipping unreadable fidelity file {bad}: "
                           f"rope.RopeTime.track_time(tiny): {why}")
    assert line.endswith(f"move it out of {fidelity.fidelity_dir(tmp_path)} (keep it if you "
                         "want to repair it) to stop this message")
    assert bad.read_text() == before


def test_a_damaged_machine_file_is_named_with_its_fix_not_taken_for_no_results(tmp_path,
                                                                              capsys):
    """asv passes over a machine whose machine.json it cannot read: report left the machine
    out (exit 0), `report --machine` and compare said it had no results. Refused, naming
    the file and how it comes back."""
    write_asv_results(tmp_path, "box", COMMITS, "rope")
    write_asv_results(tmp_path, "other", COMMITS[:1], "rope")
    machine_file = tmp_path / "results" / "box" / "machine.json"
    machine_file.write_text("{oops")

    for machine in (None, "box", "other"):
        with pytest.raises(KernelwatchError) as refused:
            report.print_report(tmp_path, machine=machine)
        message = str(refused.value)
        assert message.startswith(f"{machine_file} cannot be read (not valid JSON (")
        assert "asv reads none of a machine's results without its machine.json" in message
        assert "delete it, and `kernelwatch history pull` brings back" in message
        assert "`kernelwatch run --machine NAME` writes it again" in message
    assert "Skipping results" not in "".join(capsys.readouterr())
    assert machine_file.read_text() == "{oops"

    machine_file.write_text(json.dumps({"machine": "box", "version": 1}))
    assert {r.machine for r in result_rows.load(tmp_path / "results")} == {"box", "other"}


@pytest.mark.parametrize("content,why", [
    ('{"x": 1', "not valid JSON"),
    ("[1]", "not an object"),
    ('{"rope.Case.track_time": {"status": "gone"}}',
     "rope.Case.track_time: not a status (skipped or failed) and a reason"),
])
def test_a_damaged_outcomes_file_is_refused_by_report_and_compare_as_by_publish(
        tmp_path, content, why):
    """The outcomes give the rows their skip and failure reasons: read as empty, a skipped
    combination would show as never run. So the rows refuse it, as publish does."""
    write_asv_results(tmp_path, "box", COMMITS, "rope")
    bad = tmp_path / "results" / "box" / "abababab-env.outcomes"
    bad.write_text(content)

    with pytest.raises(KernelwatchError) as refused:
        report.print_report(tmp_path)
    assert str(refused.value).startswith(f"these result files cannot be read: {bad} ({why}")
    assert "Move them out of results/ (keep them if you want to repair them)" in str(
        refused.value)
    with pytest.raises(KernelwatchError, match="these result files cannot be read"):
        result_rows.load(tmp_path / "results")  # what compare and bisect read
    assert bad.read_text() == content


def test_a_run_moves_a_damaged_outcomes_file_aside_before_it_records(tmp_path, capsys):
    """A run that ends at that commit and environment writes the file again: the damaged
    one is moved out of results/ first, whole, and named."""
    from kernelwatch.results import outcomes

    results = tmp_path / "results"
    bad = outcomes.path_of(results, "box", COMMITS[0], "env")
    bad.parent.mkdir(parents=True)
    bad.write_text("{oops")

    outcomes.record(results, "box", COMMITS[0], "env", {"rope.A.track_time(x)": ("skipped",
                                                                                  "no GPU")})

    assert json.loads(bad.read_text()) == {
        "rope.A.track_time(x)": {"status": "skipped", "reason": "no GPU"}}
    [moved] = (tmp_path / ".kernelwatch" / "damaged" / "results" / "box").iterdir()
    assert moved.name.startswith(bad.name) and moved.read_text() == "{oops"
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"kernelwatch: {bad} was damaged (not valid JSON")
    assert f"moved aside to {moved}" in line


def test_a_reason_with_a_terminal_s_colour_codes_is_recorded_as_plain_text(tmp_path):
    from kernelwatch.results import files as result_files
    from kernelwatch.results import outcomes

    results = tmp_path / "results"
    path = outcomes.record(results, "box", COMMITS[0], "env", {
        "rope.A.track_time(x)": ("failed", "\x1b[31mRuntimeError: boom\x1b[0m\n" + "x" * 3000)})

    reason = json.loads(path.read_text())["rope.A.track_time(x)"]["reason"]
    assert reason.startswith("[31mRuntimeError: boom[0m") and len(reason) == 2000
    result_files.check_file(results, path.relative_to(results).as_posix())  # readers take it
