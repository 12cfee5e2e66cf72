"""`--versions DIST=V1,V2`: a version listed twice is one environment, and a version pip
finds but will not install is told apart from one it does not find (real pip, its index)."""

import pytest

from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import releases


def test_a_version_listed_twice_is_measured_once_and_said_so(capsys):
    assert releases.parse_versions("torch=2.13.0,2.14.1,2.13.0") == ("torch",
                                                                     ["2.13.0", "2.14.1"])
    assert "--versions torch lists 2.13.0 more than once" in capsys.readouterr().err


def test_a_version_pip_finds_but_will_not_install_names_pip_s_reason(tmp_path, monkeypatch):
    """A constraint in pip's configuration (as this machine's caps torch) forbids 2.14.1,
    which the index has: the message used to read "cannot install torch 2.14.1; the
    versions pip finds: ..., 2.14.1, ...". Now it says pip finds it and gives pip's reason
    and where such a constraint lives."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    with pytest.raises(KernelwatchError) as caught:
        releases.check_installable("torch", ["2.14.1"])
    message = str(caught.value)
    assert message.startswith("pip finds torch 2.14.1 but will not install it here (pip: "
                              "Cannot install torch==2.14.1"), message
    assert "PIP_CONSTRAINT" in message and "the versions pip finds" not in message
