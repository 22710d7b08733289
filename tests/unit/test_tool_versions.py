"""Tool versions in the report: the version line, for the programs that take no --version
too (tools/install-deps.sh installs busybox-static and makedumpfile on the host)."""

from __future__ import annotations

from kseries.core.tools import program_version, tool_versions


def test_busybox_and_makedumpfile_give_their_version_not_an_error() -> None:
    assert program_version("busybox").startswith("BusyBox v")
    assert program_version("makedumpfile").startswith("makedumpfile: version ")


def test_other_programs_answer_version_and_missing_ones_say_so() -> None:
    assert program_version("git").startswith("git version ")
    assert program_version("kseries-no-such-program") == "not installed"
    assert tool_versions(["git"])["python:b4"][0].isdigit()
