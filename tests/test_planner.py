"""The planner (kernelwatch.engine.planner) through real asv: a second run on a commit measures
only what is not recorded yet."""


import pytest

from kernelwatch.results import rows as result_rows

from .conftest import MACHINE, git, kernelwatch_exe, run

pytestmark = pytest.mark.slow
def test_a_second_run_on_a_commit_measures_only_what_is_missing(clone, isolated_home):
    """asv's --skip-existing-successful would skip a whole benchmark once any of its
    parameters is recorded (the rest are stored as NaN). kernelwatch leaves out only the
    recorded combinations: a second run adds the compile variant, keeps eager's samples as
    they were, and a third run of both measures nothing."""
    from kernelwatch.engine import planner

    sel = [kernelwatch_exe(), "run", "--existing", "--workload", "rope", "--shape", "tiny",
           "--form", "rotate-half", "--dtype", "float32", "--metric", "time"]

    def rows():
        return {r.params["variant"]: r for r in result_rows.load(clone / "results")
                if r.machine == MACHINE and r.env_name.startswith("existing")
                and r.benchmark == "rope.RopeTime.track_time" and r.params["shape"] == "tiny"
                and r.params["form"] == "rotate-half" and r.params["dtype"] == "float32"
                and r.value is not None}

    assert run([*sel, "--variant", "eager"], clone).returncode == 0
    eager = rows()["eager"]
    assert "compile" not in rows()
    r = run([*sel, "--variant", "compile", "--variant", "eager"], clone)
    assert r.returncode == 0
    assert "selected results already recorded are kept" in r.stdout
    after = rows()
    assert after["compile"].median > 0
    assert after["eager"].samples == eager.samples  # kept, not measured again
    r = run([*sel, "--variant", "compile", "--variant", "eager"], clone)
    assert r.returncode == 0
    assert "are kept, not measured again" in r.stdout and "\n+ " not in "\n" + r.stdout
    assert rows()["eager"].samples == eager.samples

    # Planning over a commit with nothing recorded: a call of its own, nothing left out.
    head = git("rev-parse", "HEAD", cwd=clone)
    regex = (r"^rope\.RopeTime\.track_\w+\('tiny', 'rotate-half', 'float32', "
             r"'(eager|compile)'\)$")
    calls = planner.plan(clone / "results", MACHINE, [head, "0" * 40], [eager.env_name],
                          [[regex]])
    by_commit = {tuple(c.commits): c for c in calls}
    # Two variants x RopeTime's two tracks (the device and the caller's time).
    assert by_commit[(head,)].kept == 4 and by_commit[(head,)].regexes != [regex]
    assert by_commit[("0" * 40,)].kept == 0 and by_commit[("0" * 40,)].regexes == [regex]
