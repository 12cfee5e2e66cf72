"""The published site in a real browser with no network: Debian's chromium (`make test`
installs it: scripts/ensure-chromium.sh), run in a network namespace of its own (`unshare
-n`), so no request can leave the machine and a page that needed one would not draw.

Real results: RoPE's tiny eager and compile timed at HEAD~1, then at HEAD with the test-only
slowdown injected (the time doubled), under a machine of their own; then `kernelwatch publish`, and
`kernelwatch compare` of the two commits."""

import os
import re
import shutil
import subprocess

import pytest

from kernelwatch.report import offline

from .conftest import kernelwatch_exe

pytestmark = pytest.mark.slow
MACHINE = "browser-test"


def dom(url: str) -> str:
    """The page's DOM after its scripts ran (10 s of virtual time), with no network."""
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.fail("no chromium: run scripts/ensure-chromium.sh (make test does)")
    isolate = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    r = subprocess.run([*isolate, chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--disable-background-networking",
                        "--allow-file-access-from-files", "--virtual-time-budget=10000",
                        "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def site(clone, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")  # asv's machine file, apart from the user's
    env = {**os.environ, "HOME": str(home), "KERNELWATCH_MACHINE": MACHINE}
    case = ["--workload", "rope", "--param", "shape=tiny", "--param", "form=rotate-half",
            "--param", "dtype=float32", "--param", "variant=eager", "--param", "variant=compile",
            "--metric", "time", "--track", "time", "--torch", "2.13.0"]
    # Doubled, not +20%: the pages are under test here, not the detector's sensitivity
    # (docs/measurement.md has that). On CI's shared machine a burst once slowed 17 of 30
    # back-to-back samples of compiled tiny RoPE from 44 to 75 us at HEAD~1, so its median
    # read 66.6 us and a 20% slower HEAD (53 us) looked faster.
    for rev, slowdown in (("HEAD~1^!", "0"), ("HEAD^!", "1.0")):
        r = subprocess.run([kernelwatch_exe(), "run", *case, rev], cwd=clone, text=True,
                           capture_output=True,
                           env={**env, "KERNELWATCH_INJECT_SLOWDOWN": slowdown})
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run([kernelwatch_exe(), "publish"], cwd=clone, text=True,
                       capture_output=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return clone / "html"


def test_nothing_on_the_site_loads_from_the_network(site):
    assert offline.external_loads(site) == []


def test_the_speedup_chart_draws_its_points(site):
    page = dom((site / "kernelwatch" / "speedups.html").as_uri())
    section = page.split(f"<h2>{MACHINE}</h2>")[1]
    assert 'class="scatterlayer' in section  # plotly drew the figure
    assert len(re.findall(r'class="point"', section)) >= 2  # compile vs eager, two commits


def test_the_regressions_page_lists_the_injected_regression(site):
    page = dom((site / "kernelwatch" / "regressions.html").as_uri())
    ours, steps = page.split("asv's detected steps")
    worse = [row for row in re.findall(r'<tr class="worse">(.*?)</tr>', ours)
             if MACHINE in row and "rope.RopeTime.track_time" in row]
    # A doubled time is flagged for compiled RoPE; eager's row is listed, flagged or not.
    assert "tiny, rotate-half, float32, compile" in {
        re.findall(r"<td>(.*?)</td>", row)[3] for row in worse}  # params, in their order
    assert "tiny, rotate-half, float32, eager" in ours
    # Each row links to the series' graph on asv's site.
    assert all(f'href="../index.html#rope.RopeTime.track_time?machine={MACHINE}"' in row
               for row in worse)
    # asv's own step detection, read from its feed, lists the same series beside it.
    assert "rope.RopeTime.track_time" in steps and 'href="../index.html#rope.RopeTime' in steps


def test_the_overview_shows_geomean_and_a_heatmap_with_the_change_marked(site):
    page = dom((site / "kernelwatch" / "overview.html").as_uri())
    section = page.split(f"<h2>{MACHINE}")[1]
    assert "geomean speedup" in section and 'class="heatmap"' in section
    # The doubled compile time at HEAD is a flagged change: its cell is outlined and links
    # to the series' history.
    changed = re.findall(r'<td class="heat changed"[^>]*><a href="([^"]+)">', section)
    assert changed and all(h.startswith("../index.html#rope.RopeTime") for h in changed)


def test_asvs_graph_page_renders_its_plot(site):
    page = dom((site / "index.html").as_uri() + f"#rope.RopeTime.track_time?machine={MACHINE}")
    assert "failed to load" not in page  # asv's page for a missing script
    assert "flot-base" in page and 'class="legendLabel"' in page  # flot drew the series


def test_compare_of_the_two_commits_prints_the_table_and_fails_on_the_slowdown(site):
    clone = site.parent
    env = {**os.environ, "KERNELWATCH_MACHINE": MACHINE}
    r = subprocess.run([kernelwatch_exe(), "compare", "HEAD~1", "HEAD", "--machine", MACHINE],
                       cwd=clone, text=True, capture_output=True, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "| before | after | ratio |" in r.stdout
    line = next(ln for ln in r.stdout.splitlines()
                if "`rope.RopeTime.track_time` (`tiny, rotate-half, float32, compile`)" in ln)
    assert line.startswith("| + |")


# ----------------------------------------------------------------------------- hostile data
# The results branch is written by every runner that may push. Names that asv's pages put
# into HTML as they are, and a commit hash kernelwatch's pages printed, are planted in a copy
# of the real results above; the site is opened in chromium and its DOM checked.
PAYLOAD = "<img src=x onerror=\"document.body.setAttribute('data-pwned','yes')\">"


def plant_hostile_results(results):
    import json

    real = sorted(p for p in (results / MACHINE).glob("*.json") if p.name != "machine.json")[0]
    data = json.loads(real.read_text())
    evil = results / "evil"
    evil.mkdir()
    (evil / "machine.json").write_text(json.dumps({"machine": "evil", "version": 1,
                                                   "cpu": PAYLOAD}))
    named = dict(data, params={**data["params"], "machine": "evil"})
    named["results"] = {f"rope.RopeTime.track_{PAYLOAD}": row
                        for row in list(data["results"].values())[:1]}
    hashed = dict(named, results=data["results"], commit_hash=f"<script>{PAYLOAD}</script>")
    (evil / f"{data['commit_hash'][:8]}-hashed.json").write_text(json.dumps(hashed))
    # Valid JSON of the wrong shape: asv's publish used to crash on it after wiping html/.
    shaped = dict(named, results=data["results"], date="yesterday", result_columns=["result"])
    (evil / f"{data['commit_hash'][:8]}-shaped.json").write_text(json.dumps(shaped))
    listed = json.loads((results / "benchmarks.json").read_text())
    listed[f"rope.RopeTime.track_{PAYLOAD}"] = {**listed["rope.RopeTime.track_time"],
                                               "name": f"rope.RopeTime.track_{PAYLOAD}"}
    first = listed["rope.RopeTime.track_time"]
    listed["rope.RopeTime.track_params"] = {**first, "name": "rope.RopeTime.track_params",
                                            "param_names": [f"shape{PAYLOAD}",
                                                            *first["param_names"][1:]]}
    (results / "benchmarks.json").write_text(json.dumps(listed))
    (evil / f"{data['commit_hash'][:8]}-named.json").write_text(json.dumps(named))
    # A plain file whose benchmark's list entry is refused: its results are never shown.
    params = dict(named, results={"rope.RopeTime.track_params":
                                  data["results"]["rope.RopeTime.track_time"]})
    (evil / f"{data['commit_hash'][:8]}-params.json").write_text(json.dumps(params))


def site_files(html_dir):
    return {str(p.relative_to(html_dir)): p.read_bytes() for p in html_dir.rglob("*")
            if p.is_file()}


def test_hostile_results_never_run_script_and_a_refused_publish_keeps_the_site(site,
                                                                                 tmp_path):
    repo = tmp_path / "kw"
    subprocess.run(["git", "clone", "-q", str(site.parent), str(repo)], check=True)
    shutil.copytree(site.parent / "results", repo / "results")
    env = {**os.environ, "HOME": str(tmp_path)}
    publish = [kernelwatch_exe(), "publish"]
    assert subprocess.run(publish, cwd=repo, env=env, capture_output=True).returncode == 0
    before = site_files(repo / "html")
    plant_hostile_results(repo / "results")

    r = subprocess.run(publish, cwd=repo, env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert "cannot be published" in r.stderr and "the site was not touched" in r.stderr
    for name in ("evil/machine.json", "-named.json: benchmark name", "-hashed.json: commit_hash",
                 "-shaped.json: date"):
        assert name in r.stderr, name
    assert site_files(repo / "html") == before  # the last site, whole

    r = subprocess.run([*publish, "--skip-corrupt"], cwd=repo, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "entry 'rope.RopeTime.track_<img" in r.stderr  # named, left out
    html_dir = repo / "html"
    pages = [html_dir / "index.html", f"{(html_dir / 'index.html').as_uri()}#summarylist",
             f"{(html_dir / 'index.html').as_uri()}#rope.RopeTime.track_time?machine={MACHINE}",
             html_dir / "kernelwatch" / "index.html", html_dir / "kernelwatch" / "writeups.html",
             html_dir / "kernelwatch" / "regressions.html"]
    for page in pages:
        url = page.as_uri() if hasattr(page, "as_uri") else page
        text = dom(url)
        assert 'data-pwned="yes"' not in text, url  # no planted script ran
        assert "data-pwned" not in text and "&lt;script&gt;" not in text, url  # nor shown
    assert "flot-base" in dom(pages[2])  # the real series still draws
