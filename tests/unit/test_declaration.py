"""A workload's declarations refuse what would misbehave far from where it was written."""

import pytest

from kernelwatch.workloads.declaration import Variant


@pytest.mark.parametrize("without, fix", [
    ("peft", "must be a tuple of module names, as ('peft',); got 'peft'"),
    (["peft"], "must be a tuple of module names"),
    (("peft", ""), "must be a tuple of module names"),
])
def test_a_server_import_without_that_is_not_a_tuple_of_names_is_refused(without, fix):
    """("peft") is a string, whose letters the server would hide one by one; a list would
    stop the forkserver's import of the whole suite (it keys a cache)."""
    with pytest.raises(ValueError) as refused:
        Variant("liger", server_import="liger_kernel.ops.rope", server_import_without=without)
    assert str(refused.value).startswith("variant liger: server_import_without " + fix)


def test_a_server_import_without_needs_the_server_import_it_qualifies():
    with pytest.raises(ValueError, match="set server_import too"):
        Variant("liger", server_import_without=("peft",))
    assert Variant("liger", server_import="m", server_import_without=("peft",))
