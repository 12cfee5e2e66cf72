"""`kernelwatch publish` and `publish --target` at once in one checkout: each site ends whole
and its own (they used to share their working folders, so html/ could end up holding the
library's site, or no index.json, with both exiting 0); two publishes of one site take
turns."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .conftest import REPO, git, kernelwatch_exe, sh, write_asv_results


def library_repo(path: Path) -> list[str]:
    """A small git repository standing for the library: its two commits, newest first."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name in ("a", "b"):
        (path / name).write_text(name)
        git("add", "-A", cwd=path)
        git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", name, cwd=path)
    return git("rev-list", "main", cwd=path).split()


def test_publish_and_publish_target_at_once_each_build_their_own_whole_site(tmp_path):
    checkout = tmp_path / "kernelwatch"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(checkout)],
                   check=True)
    git("checkout", "-q", "-B", "main", cwd=checkout)
    write_asv_results(checkout, "box", [git("rev-parse", "HEAD", cwd=checkout)], "rope")
    library = tmp_path / "lib"
    write_asv_results(tmp_path / "lib-results", "box", library_repo(library), "gptq")
    (tmp_path / "lib-results" / "results").rename(checkout / "results-llmcompressor")

    plain = [kernelwatch_exe(), "publish"]
    target = [kernelwatch_exe(), "publish", "--target", f"llmcompressor={library}"]
    # Two sites at once, then one site twice at once (the second waits for the first).
    for commands in ([plain, target], [plain, target], [plain, plain]):
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda cmd: sh(cmd, cwd=checkout), commands))
        assert [r.returncode for r in done] == [0, 0], [r.stderr[-2000:] for r in done]
        assert not any("Traceback" in r.stderr for r in done)
        for site, project in (("html", "kernelwatch"), ("html-llmcompressor", "llmcompressor")):
            index = json.loads((checkout / site / "index.json").read_text())
            assert index["project"] == project, site
            assert (checkout / site / "kernelwatch" / "index.html").is_file(), site
