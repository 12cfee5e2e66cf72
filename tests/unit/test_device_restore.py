"""scripts/device-restore-results.py: a warm GPU machine's own result files go back over a
carried copy of results/ only where they hold all of its recorded work."""

import json
import subprocess
import sys
from pathlib import Path

from kernelwatch.engine.benchloop import DURATION_KEY, STOPPED_KEY
from kernelwatch.results.files import PROCESSES_KEY

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device-restore-results.py"
FILE = "gpu-x/6b789d70-existing-py.json"
TIME = "rope.RopeTime.track_time('8b', 'compile')"
CALLER = "rope.RopeTime.track_caller_time('8b', 'compile')"


def result_file(path: Path, combos: dict[str, int]) -> None:
    """An asv result file's fields that say what was recorded: a combination's seconds and,
    for one pooled over processes, their count (as the benchmark loop writes them)."""
    durations = {}
    for combo, processes in combos.items():
        durations[DURATION_KEY.format(name=combo)] = 1.5
        if processes:
            durations[PROCESSES_KEY.format(name=combo)] = processes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"commit_hash": "6b789d70", "durations": durations}))


def restore(kept: Path, results: Path) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), str(kept), str(results)],
                          capture_output=True, text=True, check=True).stdout


def test_a_carried_copy_with_less_work_gives_way_and_one_with_more_is_kept(tmp_path):
    kept, results = tmp_path / "kept", tmp_path / "results"
    result_file(kept / FILE, {TIME: 2, CALLER: 0})
    (kept / "gpu-x" / "machine.json").write_text('{"machine": "gpu-x"}')
    result_file(results / FILE, {TIME: 1})  # an earlier lease's file, carried
    out = restore(kept, results)
    assert json.loads((results / FILE).read_text()) == json.loads((kept / FILE).read_text())
    assert (results / "gpu-x" / "machine.json").is_file()
    assert "2 result files of this machine's earlier calls restored" in out

    # A call killed before it packed wrote more than the machine's copy holds: it stays.
    result_file(results / FILE, {TIME: 3, CALLER: 0})
    out = restore(kept, results)
    assert json.loads((results / FILE).read_text())["durations"][
        PROCESSES_KEY.format(name=TIME)] == 3
    assert "1 files left as they are" in out and FILE in out

    # Measured elsewhere: another combination the machine's copy lacks.
    result_file(results / FILE, {"rope.RopeTime.track_time('1b', 'eager')": 0})
    assert "left as they are" in restore(kept, results)

    # A carried copy whose process of CALLER was stopped, where the machine's own file has
    # CALLER measured to the end since: the stopped seconds are not work it lacks.
    result_file(results / FILE, {TIME: 1})
    carried = json.loads((results / FILE).read_text())
    carried["durations"][STOPPED_KEY.format(name=CALLER)] = 171.0
    (results / FILE).write_text(json.dumps(carried))
    restore(kept, results)
    assert json.loads((results / FILE).read_text()) == json.loads((kept / FILE).read_text())
