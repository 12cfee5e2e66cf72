"""Each form of llm-compressor's `quantize_weight` the adapter (workloads/gptq/upstream.py)
calls, with the library's own released sources: codes identical to the project's eager GPTQ
on the same weight, Hessian and scheme, and the releases before the first form named with
the reason. The batched form (0.14) is the installed release; the older ones are read from
llm-compressor's git history (a bundle: KERNELWATCH_LLMC_BUNDLE, default
../shared/upstream/llm-compressor.bundle beside the repository), each release's module
imported from its own tree (tests/library_sources.py). The two oldest forms need the
compressed-tensors their release pinned (its newer ones dropped helpers they import): pip
puts it in a folder of its own, which shadows the installed one in that child process.

Cost: a clone of the bundle (~10 s), three child processes (~8 s each, mostly imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from kernelwatch.errors import Unavailable
from kernelwatch.workloads.gptq import case as gptq
from kernelwatch.workloads.gptq import upstream as _gptq_upstream

from .conftest import REPO

# release -> (the form its quantize_weight has, the compressed-tensors it needs here: None
# where the installed one serves). One release per form, and each release where the module
# moved.
RELEASES = {
    "0.13.0": ("module-observer", None),
    "0.11.0": ("module-observer", None),
    "0.10.0": ("module-registry", None),
    "0.9.0": ("module-dict", "0.13.0"),
    "0.4.0": ("module-dict", "0.9.0"),
    "0.3.0": (None, None),  # GPTQWrapper: not measurable
}
# Where the release's own observer picks other zero points than gptq's (compressed-tensors
# 0.9's asymmetric rule): the codes differ in a few percent of places, so the bound is the
# workload's own quality gate, output error within QUALITY_TOLERANCE of eager's.
BOUNDED = {("0.4.0", "w4-asym-g128")}
# Packages whose __init__ the forms rely on (observers register themselves there; the
# helpers a form imports are defined there).
RUN_INIT = ("llmcompressor.observers", "llmcompressor.modifiers.utils", "llmcompressor.utils")

CHECK = """
import json, sys
from pathlib import Path
import torch
from kernelwatch.errors import Unavailable
from kernelwatch.workloads.gptq import case as gptq
from kernelwatch.workloads.gptq import upstream as _gptq_upstream
from tests.library_sources import export, load
clone, exports = Path(sys.argv[1]), Path(sys.argv[2])
out = {}
for tag in sys.argv[4:]:
    src = export(clone, tag, "src", exports)
    with load(src, "llmcompressor", run_init=tuple(sys.argv[3].split(","))):
        try:
            form = _gptq_upstream.installed_form()
        except Unavailable as exc:
            out[tag] = {"unavailable": str(exc)}
            continue
        for scheme in gptq.SCHEMES:
            case = gptq.build_case("tiny/proj", scheme, "16", "eager", seed=7)
            ours = gptq.gptq(case.weight, case.hessian, case.scheme, blocksize=16)
            run = _gptq_upstream.llmcompressor_quantizer(gptq.group_qparams, eager=True,
                                                         form=form)
            theirs = run(case.weight, case.hessian, case.scheme, 16)
            out.setdefault(tag, {"form": form.name})[scheme] = [
                float((theirs == ours.dequantized).float().mean()),
                gptq.relative_output_error(case.weight, theirs, case.held_out)
                / gptq.relative_output_error(case.weight, ours.dequantized, case.held_out)]
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def forms_checked(llmc_clone, tmp_path_factory) -> dict:
    """{release: {"form": name, scheme: [fraction of codes identical, output error / eager's]}
    or {"unavailable": message}}, each group of releases in one child process."""
    exports = tmp_path_factory.mktemp("llmc-src")
    groups: dict[str | None, list[str]] = {}
    for tag, (_, pinned) in RELEASES.items():
        groups.setdefault(pinned, []).append(tag)
    found = {}
    for pinned, tags in groups.items():
        env = dict(os.environ)
        if pinned:
            folder = tmp_path_factory.mktemp(f"compressed-tensors-{pinned}")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                            "--target", str(folder), f"compressed-tensors=={pinned}"],
                           check=True, capture_output=True)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder),
                                                              env.get("PYTHONPATH")]))
        r = subprocess.run([sys.executable, "-c", CHECK, str(llmc_clone), str(exports),
                            ",".join(RUN_INIT), *tags],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        found.update(json.loads(r.stdout.splitlines()[-1]))
    print(found)
    return found


@pytest.mark.parametrize("release", [t for t, (form, _) in RELEASES.items() if form])
def test_each_released_form_gives_the_codes_of_eager_gptq(release, forms_checked):
    form, _ = RELEASES[release]
    assert forms_checked[release]["form"] == form
    for scheme in gptq.SCHEMES:
        identical, error_ratio = forms_checked[release][scheme]
        if (release, scheme) in BOUNDED:
            assert identical > 0.9 and error_ratio <= 1 + gptq.QUALITY_TOLERANCE, scheme
        else:
            assert identical == 1.0 and error_ratio == 1.0, (release, scheme)


def test_a_release_before_the_first_form_is_named_with_the_reason(forms_checked):
    why = forms_checked["0.3.0"]["unavailable"]
    assert "not measurable before 0.4.0" in why and "GPTQWrapper" in why
    assert gptq.SPEC.libraries["llmcompressor"].supported == ">=0.4.0"


@pytest.mark.parametrize("scheme", list(gptq.SCHEMES))
def test_the_batched_form_of_the_installed_release_gives_the_codes_of_eager_gptq(scheme):
    pytest.importorskip("llmcompressor", reason="needs llmcompressor: pip install "
                        "'kernelwatch[gptq]'")
    form = _gptq_upstream.installed_form()
    assert form.name == "batched"
    case = gptq.build_case("tiny/proj", scheme, "16", "llmcompressor-eager", seed=3)
    ours = gptq.gptq(case.weight, case.hessian, case.scheme, blocksize=16)
    assert torch.equal(case.run(), ours.dequantized)


def test_a_form_the_adapter_does_not_know_is_named():
    def quantize_weight(layer, hessian, args):
        return layer

    with pytest.raises(Unavailable, match=r"quantize_weight\(layer, hessian, args\) is a "
                       "form this adapter does not know"):
        _gptq_upstream.form_of(quantize_weight)
