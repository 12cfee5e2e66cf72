"""Kernel inventories (`<commit>-<env>.kernels`) are kept like results: written whole, watched
and put back by the snapshot, and a damaged one is moved aside with a message instead of
stopping the run. Real files, a real full filesystem (a small tmpfs) where the test may
mount one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwatch import inventory_file
from kernelwatch.engine.snapshot import Snapshot
from kernelwatch.errors import KernelwatchError

COMMIT = "ab" * 20
ENV = "virtualenv-py3.11-torch2.13.0"
PREFIX = str(Path(sys.prefix).resolve())


def leave_note(spool: Path, monkeypatch, case: str, kernels: list[str]) -> Path:
    """A benchmark process's note, left as a benchmark process leaves it."""
    monkeypatch.setenv(inventory_file.SPOOL_ENV, str(spool))
    monkeypatch.setenv(inventory_file.COMMIT_ENV, COMMIT)
    return inventory_file.record(case, {"kernels": kernels, "code_hash": "", "source": "x"})


def test_a_truncated_inventory_is_moved_aside_and_filing_goes_on(tmp_path, monkeypatch,
                                                                  capsys):
    """A write cut short left 4096 bytes of JSON: the next filing names the file, moves it
    out of results/ (kept, for a repair) and writes the new inventories; no traceback."""
    machine_dir = tmp_path / "results" / "box"
    machine_dir.mkdir(parents=True)
    path = inventory_file.path_for(machine_dir, COMMIT, ENV)
    whole = json.dumps({f"rope(case{i})": {"kernels": ["k"] * 40} for i in range(100)})
    path.write_text(whole[:4096])
    spool = tmp_path / "spool"
    leave_note(spool, monkeypatch, "rope(tiny)", ["triton_poi_fused_0"])

    written = inventory_file.collect(spool, machine_dir, {PREFIX: ENV})

    assert written == [path]
    assert json.loads(path.read_text()) == {"rope(tiny)": {
        "kernels": ["triton_poi_fused_0"], "code_hash": "", "source": "x"}}
    [aside] = (tmp_path / ".kernelwatch" / "damaged" / "results" / "box").iterdir()
    assert aside.name.startswith(path.name) and aside.read_text() == whole[:4096]
    err = capsys.readouterr().err
    assert f"{path} was damaged" in err and f"moved aside to {aside}" in err
    assert not list(spool.glob("*.json"))  # filed
    assert sorted(p.name for p in machine_dir.iterdir()) == [path.name]  # no temporary left


def test_the_snapshot_puts_back_an_inventory_a_call_left_unreadable(tmp_path):
    """Like a result file: what a call truncated is put back as it was before the call; a
    file already damaged before the run is left as it is, not claimed as restored."""
    results = tmp_path / "results"
    machine_dir = results / "box"
    machine_dir.mkdir(parents=True)
    good = inventory_file.path_for(machine_dir, COMMIT, ENV)
    good.write_text(json.dumps({"rope(tiny)": {"kernels": ["a", "b"]}}))
    before = good.read_bytes()
    old_damage = machine_dir / "cdcdcdcd-env.kernels"
    old_damage.write_text('{"rope(')
    snap = Snapshot.take(results, "box", tmp_path / "asv-machine.json")

    good.write_bytes(before[:10])  # a write killed halfway
    lines = snap.repair()

    assert good.read_bytes() == before
    assert lines == [f"{good}: restored as it was before the asv call that broke it"]
    assert old_damage.read_text() == '{"rope('


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_while_filing_keeps_the_inventory_and_names_the_disk(tmp_path,
                                                                         monkeypatch):
    """results/ on a full filesystem: filing more inventories into a file that holds earlier
    ones stops with a message naming the disk; the file keeps every earlier inventory (it
    used to be cut at the first page) and the new notes wait in the spool."""
    results = tmp_path / "results"
    results.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(results)],
                   check=True)
    try:
        machine_dir = results / "box"
        path = inventory_file.path_for(machine_dir, COMMIT, ENV)
        machine_dir.mkdir()
        path.write_text(json.dumps({f"rope(case{i})": {"kernels": [f"k{i}"] * 50}
                                    for i in range(200)}))
        before = path.read_bytes()
        with open(results / "filler", "wb", buffering=0) as f:  # every byte left taken
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        spool = tmp_path / "spool"
        note = leave_note(spool, monkeypatch, "rope(big)", ["triton_poi_fused_1"] * 5000)

        with pytest.raises(KernelwatchError) as caught:
            inventory_file.collect(spool, machine_dir, {PREFIX: ENV})

        message = str(caught.value)
        assert message.startswith(f"the disk holding results/ ({results}) is full (")
        assert "MiB free" in message and "free at least 1 MiB there" in message
        assert str(spool) in message
        assert path.read_bytes() == before
        assert note.is_file()  # filed by the next run
        assert sorted(p.name for p in machine_dir.iterdir()) == [path.name]
    finally:
        subprocess.run(["umount", str(results)], check=False)


def test_a_note_its_readers_would_refuse_is_named_and_not_filed(tmp_path, monkeypatch,
                                                                capsys):
    """What is filed passes the check report and compare read it with: a kernel name with a
    control character in it (a terminal's colour code) is not filed; the other notes are."""
    machine_dir = tmp_path / "results" / "box"
    spool = tmp_path / "spool"
    bad = leave_note(spool, monkeypatch, "rope(a)", ["\x1b[31mtriton_poi_fused_0"])
    leave_note(spool, monkeypatch, "rope(b)", ["triton_poi_fused_1"])

    [path] = inventory_file.collect(spool, machine_dir, {PREFIX: ENV})

    assert json.loads(path.read_text())["rope(b)"]["kernels"] == ["triton_poi_fused_1"]
    assert "rope(a)" not in json.loads(path.read_text())
    assert f"{bad}: an inventory note its readers would refuse" in capsys.readouterr().err
    assert inventory_file.load_all(tmp_path / "results", "box") == {}  # no result file
