"""The run engine (kernelwatch.engine.run) through real asv in a fresh clone: the quick run over
the last two commits x the two torch versions, then publish and compare; the per-benchmark
timeout as the compile budget; an existing environment saved part by part; K processes
pooled into one result. Slow (minutes): the first run builds two torch environments."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from kernelwatch.report import offline
from kernelwatch.results import rows as result_rows
from kernelwatch.workloads.rope import case as rope

from .conftest import MACHINE, git, kernelwatch_exe, run

pytestmark = pytest.mark.slow
def test_quick_run_publish_and_compare(clone, isolated_home):
    # RoPE's quick set at HEAD under both torch versions, then over both commits under
    # torch 2.13.0 (as make demo runs it); GPTQ's is the test below (one commit, one torch) to
    # keep CI's time in bounds. The second run measures only the parent (HEAD's results are
    # recorded), in its own call.
    quick = [kernelwatch_exe(), "run", "--quick", "--workload", "rope"]
    assert run([*quick, "HEAD~1..HEAD"], clone).returncode == 0
    r = run([*quick, "--torch", "2.13.0", "HEAD~2..HEAD"], clone)
    assert r.returncode == 0
    assert "part 1 of 2" in r.stdout and "HASHFILE:" in r.stdout
    assert "selected results already recorded at" in r.stdout  # HEAD's, kept
    head, parent = git("rev-parse", "HEAD", cwd=clone), git("rev-parse", "HEAD~1", cwd=clone)

    files = [f for f in (clone / "results" / MACHINE).glob("*.json") if f.name != "machine.json"]
    data = [json.loads(f.read_text()) for f in files]
    assert {(d["commit_hash"], d["params"]["torch"]) for d in data} == {
        (head, "2.13.0"), (head, "2.14.1"), (parent, "2.13.0")}
    for d in data:
        for key in ("cpu", "num_cpu", "arch", "os", "ram", "gpu", "driver"):
            assert d["params"].get(key), key

    rows = result_rows.load(clone / "results")
    by = {(r.commit, r.env["torch"], r.benchmark, tuple(r.params.values())): r for r in rows}
    for commit, torch_version in ((head, "2.13.0"), (head, "2.14.1"), (parent, "2.13.0")):
        def value(bench, params=(), c=commit, t=torch_version):
            return by[(c, t, bench, params)]
        assert value("environment.Environment.track_torch_threads").value >= 1
        assert value("environment.Environment.track_cuda_runtime").value is not None
        assert value("environment.Environment.track_copy_seconds_per_gib").median > 0
        matmul = value("environment.Environment.track_matmul_seconds_per_tflop")
        assert matmul.median > 0 and len(matmul.samples) == 10  # for compare's GPU note
        if commit == head:  # the parent's kernelwatch may predate the fact
            host = value("environment.Environment.track_dispatch_seconds")
            assert 0 < host.median < 1e-3 and len(host.samples) == 30  # one op: the host's
        for variant in ("eager", "compile", "compile-dynamic"):
            case = ("tiny", "rotate-half", "float32", variant)
            assert value("rope.RopeTime.track_time", case).median > 0
            err = value("rope.RopeAccuracy.track_rel_l2_error", case).value
            assert err <= rope.REL_L2_TOLERANCE["float32"]
        compile_case = ("tiny", "rotate-half", "float32", "compile")
        assert value("rope.RopeCompile.track_cold_compile", compile_case).value > 0.5
        assert value("rope.RopeCompile.track_recompiles", compile_case).value == 1

    r = run([kernelwatch_exe(), "publish"], clone)
    assert r.returncode == 0
    assert (clone / "html" / "index.html").exists()
    assert offline.external_loads(clone / "html") == []  # works with no network

    # A truncated result file stops publish with its name; --skip-corrupt publishes the rest
    # and leaves the file exactly as it was.
    bad = clone / "results" / MACHINE / "0123abcd-truncated.json"
    bad.write_text('{"version": 2, "results": {')
    try:
        stopped = run([kernelwatch_exe(), "publish"], clone)
        assert stopped.returncode == 2 and str(bad) in stopped.stderr
        assert "--skip-corrupt" in stopped.stderr
        rest = run([kernelwatch_exe(), "publish", "--skip-corrupt"], clone)
        assert rest.returncode == 0 and "left out of the site (unreadable" in rest.stderr
        assert str(bad) in rest.stderr and bad.read_text() == '{"version": 2, "results": {'
        assert "torch 2.14.1" in (clone / "html" / "kernelwatch" / "index.html").read_text()
    finally:
        bad.unlink()
    page = (clone / "html" / "kernelwatch" / "index.html").read_text()
    assert "vs eager" in page and "torch 2.13.0" in page and "torch 2.14.1" in page
    assert 'href="regressions.html">Regressions</a>:' in page
    regressions = (clone / "html" / "kernelwatch" / "regressions.html").read_text()
    assert "change vs previous commit" in regressions
    assert "asv's detected steps" in regressions
    roofline = (clone / "html" / "kernelwatch" / "roofline.html").read_text()
    assert "rope.RopeTime.track_time" in roofline and "% of copy BW" in roofline
    versions = (clone / "html" / "kernelwatch" / "torch.html").read_text()
    assert "<th>torch 2.13.0</th><th>torch 2.14.1</th><th>2.14.1 / 2.13.0</th>" in versions
    assert "rope.RopeTime.track_time</td><td>tiny, rotate-half, float32, compile" in versions

    r = run([sys.executable, "-m", "asv", "compare", "--machine", MACHINE, parent, head], clone)
    assert r.returncode == 0
    assert "rope.RopeTime.track_time" in r.stdout and "Change" in r.stdout


def test_compile_over_budget_fails_that_parameter_only(clone, isolated_home):
    """A 8 s budget: the eager timing fits, the ~13 s cold compile does not."""
    regexes = [r"^rope\.RopeTime\.track_time\('tiny', 'rotate-half', 'float32', 'eager'\)$",
               r"^rope\.RopeCompile\.track_cold_compile\('tiny', 'rotate-half', 'float32', "
               r"'compile'\)$"]
    head = git("rev-parse", "HEAD", cwd=clone)
    cmd = [sys.executable, "-m", "asv", "run", "--machine", MACHINE, "--python=same",
           "--set-commit-hash", head, "--show-stderr"]
    for rx in regexes:
        cmd += ["-b", rx]
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes", "--machine", MACHINE],
                   cwd=clone, check=True, capture_output=True)
    r = run(cmd, clone, KERNELWATCH_BENCHMARK_TIMEOUT="8")
    assert "timed out (timeout 8.0s)" in r.stdout
    rows = {(r.benchmark, r.params.get("variant")): r
            for r in result_rows.load(clone / "results") if r.params.get("shape") == "tiny"
            and r.params.get("form") == "rotate-half" and r.params.get("dtype") == "float32"
            and r.env_name.startswith("existing")}
    assert rows[("rope.RopeTime.track_time", "eager")].median > 0
    assert rows[("rope.RopeCompile.track_cold_compile", "compile")].value is None


def run_until_terminated(cmd: list[str], cwd, line_part: str, after: float = 0.0,
                         **env: str) -> tuple[int, str]:
    """Run `cmd` and SIGTERM its process group (as a runner's time limit does) `after`
    seconds once a line of its output holds `line_part`; its exit status and whole
    output."""
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line_part in line:
            time.sleep(after)
            os.killpg(proc.pid, signal.SIGTERM)
            break
    seen += proc.stdout.readlines()
    proc.wait(timeout=60)
    out = "".join(seen)
    print(out[-3000:])
    return proc.returncode, out


def test_a_cut_run_keeps_every_combination_that_finished(clone, isolated_home):
    """asv keeps a (commit, environment)'s results in memory until all its benchmarks have
    run; kernelwatch's benchmark loop saves each parameter combination as it ends. Stop the
    run (SIGTERM, as a runner's time limit does) once two combinations have ended: both are
    in the result file, readable, with the machine's file beside them; the run again
    measures only the rest."""

    cmd = [kernelwatch_exe(), "run", "--existing", "--workload", "gptq", "--shape", "tiny/proj",
           "--scheme", "w4-sym-g128", "--blocksize", "16", "--variant", "eager",
           "--metric", "time", "--metric", "accuracy", "--track", "time",
           "--track", "output_error", "--track", "identical_codes", "--skip-machine-facts"]
    _, out = run_until_terminated([*cmd, "-v"], clone, "kernelwatch 2/3 ",
                                  KERNELWATCH_MACHINE=MACHINE)
    assert "kernelwatch 3 combinations in existing" in out
    rows = [r for r in result_rows.load(clone / "results") if r.machine == MACHINE
            and r.env_name.startswith("existing") and r.params.get("shape") == "tiny/proj"
            and r.params.get("variant") == "eager" and r.params.get("blocksize") == "16"
            and r.params.get("scheme") == "w4-sym-g128"]
    kept = {r.benchmark for r in rows if r.value is not None or r.median is not None}
    assert len(kept) == 2, kept  # accuracy's two tracks run first (asv orders by name)
    assert (clone / "results" / MACHINE / "machine.json").is_file()
    again = run(cmd, clone, KERNELWATCH_MACHINE=MACHINE)
    assert again.returncode == 0
    assert "2 selected results already recorded" in again.stdout
    assert "1 benchmark process;" in again.stdout  # the time, not measured before


def test_a_cut_run_files_the_kernel_inventories_of_what_finished(clone, isolated_home):
    """A benchmark process leaves its kernel inventory in a spool that kernelwatch files
    beside the results after each asv call. A call cut short (SIGTERM) files the spool too:
    every combination whose count was saved has its inventory in the machine's .kernels
    file, not left for a later run."""

    from kernelwatch import inventory_file

    machine = "cut-inventory"
    cmd = [kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--shape", "tiny",
           "--dtype", "float32", "--variant", "eager", "--variant", "compile",
           "--metric", "kernels", "--skip-machine-facts", "--machine", machine]
    # Stopped half a second after the first combination's progress line shows (a CI log's:
    # a line per tenth): the second (a compile: seconds) has started on a loaded machine too.
    returncode, out = run_until_terminated(cmd, clone, "(1 of 4 combinations", after=0.5)
    assert returncode != 0 and "terminated (SIGTERM)" in out
    counted = {", ".join(r.params[k] for k in ("shape", "form", "dtype", "variant"))
               for r in result_rows.load(clone / "results") if r.machine == machine
               and r.benchmark == "rope.RopeKernels.track_kernel_count" and r.value}
    assert 1 <= len(counted) < 4, counted
    files = list((clone / "results" / machine).glob(f"*{inventory_file.SUFFIX}"))
    assert len(files) == 1, files
    filed = {case.removeprefix("rope(").removesuffix(")")
             for case in inventory_file.read(files[0])}
    assert filed >= counted, (filed, counted)
    assert not list((clone / ".kernelwatch" / "inventory-spool").glob("*.json"))

    # The combination running when the run stopped is on record as stopped, its seconds
    # then the least it takes: the next estimate counts it and names it.
    [result] = [f for f in (clone / "results" / machine).glob("*.json")
                if f.name != "machine.json"]
    durations = json.loads(result.read_text())["durations"]
    stopped = [k[len("<kernelwatch-stopped "):-1] for k in durations
               if k.startswith("<kernelwatch-stopped ")]
    assert len(stopped) == 1, durations
    # The engine's count is every combination saved (a line is read as the combination
    # ends), and its last line names the process the stop cut short.
    m = re.search(r"stopped, (\d+) of 4 combinations in [\d:]+; (\S.*) had run ", out)
    assert m and int(m.group(1)) == len(counted), out
    assert m.group(2) == stopped[0]
    assert f"<kernelwatch {stopped[0]}>" not in durations
    dry = run([*cmd, "--dry-run"], clone)
    assert dry.returncode == 0, dry.stderr
    assert " or more for the " in dry.stdout
    assert f"when a run was stopped before it ended or timed out: {stopped[0]} (" in dry.stdout


def test_processes_pools_fresh_processes_into_one_result(clone, isolated_home):
    """`--processes 2`: the benchmark loop measures the benchmark again in a second process
    of the same asv call and appends its samples (docs/measurement.md: the noise between
    commits is mostly between processes); a combination that skipped is not run again. A
    later run asking for more processes measures only the missing ones, and one of those
    that fails leaves the recorded samples as they were."""
    r = run([kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
             "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
             "--param", "variant=eager", "--param", "variant=liger", "--metric", "time",
             "--track", "time", "--processes", "2", "--machine", "two-procs", "-v"], clone)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("-m kernelwatch.engine.benchloop") == 1  # one asv start
    assert "--processes " in r.stdout
    # Liger needs a GPU: skipped in its first process and not started again; asv's log of
    # the benchmark still comes, after its last round.
    assert "benchmark processes 2 ok, 1 skipped, 0 failed" in r.stdout, r.stdout[-3000:]
    assert r.stdout.count("skipped rope.RopeTime.track_time('tiny', 'rotate-half', "
                          "'float32', 'liger')") == 1
    assert "For parameters: 'tiny', 'rotate-half', 'float32', 'liger'" in r.stdout
    case = {"shape": "tiny", "form": "rotate-half", "dtype": "float32", "variant": "eager"}
    rows = [x for x in result_rows.load(clone / "results") if x.machine == "two-procs"
            and x.benchmark == "rope.RopeTime.track_time" and x.params == case]
    assert len(rows) == 1 and len(rows[0].samples) == 60  # 30 samples from each process
    assert rows[0].processes == 2  # kept beside them, for compare's rule (detect.compare)

    # Asked for 3 now, as after a run cut among its processes: the third only is measured,
    # its samples appended; the skipped case stays as it ran.
    more = run([kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
                "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
                "--param", "variant=eager", "--param", "variant=liger", "--metric", "time",
                "--track", "time", "--processes", "3", "--machine", "two-procs"], clone)
    assert more.returncode == 0, more.stderr
    assert "1 selected results recorded in fewer processes than this run asks" in more.stdout
    assert "benchmark processes 1 ok, 0 skipped, 0 failed" in more.stdout, more.stdout[-3000:]
    rows = [x for x in result_rows.load(clone / "results") if x.machine == "two-procs"
            and x.benchmark == "rope.RopeTime.track_time" and x.params == case]
    assert len(rows) == 1 and len(rows[0].samples) == 90 and rows[0].processes == 3

    # A fourth process that times out adds nothing and takes nothing: the 90 samples stay.
    cut = run([kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
               "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
               "--param", "variant=eager", "--metric", "time", "--track", "time",
               "--processes", "4", "--machine", "two-procs"], clone,
              KERNELWATCH_BENCHMARK_TIMEOUT="0.05")
    assert cut.returncode != 0 and "1 failed" in cut.stdout, cut.stdout[-3000:]
    rows = [x for x in result_rows.load(clone / "results") if x.machine == "two-procs"
            and x.benchmark == "rope.RopeTime.track_time" and x.params == case]
    assert len(rows) == 1 and len(rows[0].samples) == 90 and not rows[0].failed
    assert rows[0].processes == 3
    # So does one appended by asv's --append-samples (bisect's top-up: --rerun with it).
    appended = run([kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
                    "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
                    "--param", "variant=eager", "--metric", "time", "--track", "time",
                    "--machine", "two-procs", "--rerun", "--", "--append-samples"], clone,
                   KERNELWATCH_BENCHMARK_TIMEOUT="0.05")
    assert appended.returncode != 0, appended.stdout[-3000:]
    rows = [x for x in result_rows.load(clone / "results") if x.machine == "two-procs"
            and x.benchmark == "rope.RopeTime.track_time" and x.params == case]
    assert len(rows) == 1 and len(rows[0].samples) == 90 and not rows[0].failed


def test_a_second_process_that_fails_leaves_the_first_one_s_value(clone, isolated_home,
                                                                  tmp_path):
    """Within one run, a combination's second process (a round of `--processes 2`) that
    fails leaves what its first process recorded, counted as one process: a run cut or
    failing among a series' processes keeps every process that finished. The benchmark loop
    runs as `kernelwatch run` starts it, on a benchmark whose second process raises."""
    import shlex

    probe = clone / "benchmarks" / "zz_second_fails.py"
    probe.write_text(
        "import os, pathlib\n\n\n"
        "def track_first_ok():\n"
        "    marker = pathlib.Path(os.environ['KW_PROBE_MARKER'])\n"
        "    if marker.exists():\n"
        "        raise RuntimeError('the second process fails')\n"
        "    marker.write_text('measured')\n"
        "    return 42.0\n")
    try:
        shown = run([kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
                     "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
                     "--param", "variant=eager", "--metric", "time", "--track", "time",
                     "--skip-machine-facts", "--machine", "second-fails", "-v"], clone)
        assert shown.returncode == 0, shown.stderr
        line = next(x for x in shown.stdout.splitlines() if x.startswith("+ ")
                    and "kernelwatch.engine.benchloop" in x)
        argv, keep = shlex.split(line[2:]), []
        skip = False
        for arg in argv:  # the loop's own command, on the probe only
            if skip:
                skip = False
            elif arg in ("-b", "--processes"):
                skip = True
            elif arg == "--":
                keep += ["--processes", r"zz_second_fails\.track_first_ok$=2", arg]
            else:
                keep.append(arg)
        keep += ["-b", "^zz_second_fails"]
        loop = run(keep, clone, KW_PROBE_MARKER=str(tmp_path / "marker"))
    finally:
        probe.unlink()
    assert loop.returncode != 0, loop.stdout[-3000:]  # the failure is the run's
    rows = [r for r in result_rows.load(clone / "results") if r.machine == "second-fails"
            and r.benchmark == "zz_second_fails.track_first_ok"]
    assert len(rows) == 1 and rows[0].value == 42.0 and not rows[0].failed, rows


def test_an_existing_environment_discovers_again_only_when_what_it_imports_changed(
        clone, isolated_home):
    """--existing keeps asv's discovery (one import of the whole suite per asv call): the
    second run answers from it; a new benchmark file, another benchmark timeout, or a kept
    answer left unreadable is discovered again, and the new benchmark is there to select."""
    cmd = [kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
           "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
           "--param", "variant=eager", "--metric", "time", "--track", "time",
           "--skip-machine-facts", "--rerun", "--machine", "discovery", "-v"]
    kept = "Discovering benchmarks: kept from an earlier run"
    first = run(cmd, clone)
    assert first.returncode == 0, first.stderr
    second = run(cmd, clone)
    assert second.returncode == 0 and kept in second.stdout, second.stdout[-3000:]

    kept_dir = clone / ".kernelwatch" / "discovery"
    extra = clone / "benchmarks" / "zz_discovery_probe.py"
    extra.write_text("def track_probe():\n    return 1.0\n")
    try:
        third = run(cmd, clone)
    finally:
        extra.unlink()
    assert third.returncode == 0 and kept not in third.stdout, third.stdout[-3000:]
    assert any("zz_discovery_probe.track_probe" in f.read_text() for f in kept_dir.glob("*"))
    assert kept in run(cmd, clone).stdout  # the probe gone: the first answer again
    # The benchmark timeout is read as the suite is imported: another one discovers again.
    assert kept not in run(cmd, clone, KERNELWATCH_BENCHMARK_TIMEOUT="700").stdout
    for path in kept_dir.glob("*.json"):
        path.write_text("{not json")
    fifth = run(cmd, clone)
    assert fifth.returncode == 0 and kept not in fifth.stdout
    assert kept in run(cmd, clone).stdout  # written anew


def test_what_the_forkserver_says_of_a_module_it_left_out_reaches_the_console(
        clone, isolated_home):
    """The server's word that it left a variant's module to its benchmark processes (printed
    while asv's forkserver imports the suite, on a GPU where the module's trial says no) is
    shown without -v, in kernelwatch's words, and kept in asv's log."""
    word = ("kernelwatch server import: left kw_demo to its benchmark processes (a process "
            "forked after importing it could not use CUDA; trial 0.1 s)")
    extra = clone / "benchmarks" / "zz_server_word.py"
    extra.write_text("import sys\n"
                     "from benchmarks.common import in_asv_forkserver\n"
                     f"if in_asv_forkserver():\n    print({word!r}, file=sys.stderr)\n")
    try:
        done = run([kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--param",
                    "shape=tiny", "--param", "dtype=float32", "--param", "form=rotate-half",
                    "--param", "variant=eager", "--metric", "time", "--track", "time",
                    "--skip-machine-facts", "--rerun", "--machine", "server-word"], clone)
    finally:
        extra.unlink()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert word in done.stdout.splitlines(), done.stdout[-3000:]
    log = sorted((clone / ".kernelwatch" / "logs").glob("run-*.log"))[-1]
    assert word in log.read_text()
