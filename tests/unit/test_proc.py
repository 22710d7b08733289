"""proc.run: time limits that kill the whole process group, log tee, C locale, one-line errors."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.core.proc import ToolTimeout, command_line, default_timeout, run

# Forks a grandchild that sleeps too, writes its pid, then sleeps itself: a hung tool
# with a helper (make and its compilers, kunit.py and QEMU).
HANGING_TOOL = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1], "w") as out:
    out.write(str(child.pid))
time.sleep(60)
"""


def is_gone(pid: int) -> bool:
    """PID has exited (a zombie nobody reaps in a container counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return is_gone(pid)


def test_hung_tool_is_a_timeout_and_its_process_group_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(HANGING_TOOL)
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as caught:
        run([sys.executable, script, pid_file], timeout_s=1, what="hang.py")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("hang.py timed out after 1 s;")
    assert isinstance(caught.value, KseriesError)
    assert wait_gone(int(pid_file.read_text()))


def test_timeout_message_names_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ToolTimeout, match=r"^sleep 60 timed out after 0.5 s; "):
        run(["sleep", "60"], timeout_s=0.5)


def test_timeout_with_a_log_says_where_the_output_is(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "hang.log"
    with pytest.raises(ToolTimeout, match="its output is in"):
        run([sys.executable, "-c", "print('working', flush=True); import time; time.sleep(60)"],
            timeout_s=1, log=log)
    text = log.read_text()
    assert "working\n" in text and "kseries: killed after 1 s" in text


def test_every_tool_has_a_time_limit() -> None:
    assert default_timeout("make") == 3 * 60 * 60
    assert default_timeout("/usr/bin/git") == 600
    assert 0 < default_timeout("some-tool-we-never-heard-of") < float("inf")


def test_log_gets_the_command_line_and_the_output(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("earlier run\n")
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    proc = run([sys.executable, "-c", code], log=log)
    text = log.read_text()
    assert text.startswith("earlier run\n$ ")
    assert text.splitlines()[1] == f"$ {command_line([sys.executable, '-c', code])}"
    assert "out\n" in text and "err\n" in text
    assert "out" in proc.stdout and "err" in proc.stdout and proc.stderr == ""


def test_child_runs_in_the_c_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    proc = run([sys.executable, "-c", "import os; print(os.environ['LC_ALL'], os.environ['LANG'])"])
    assert proc.stdout.split() == ["C", "C"]


def test_env_and_input_reach_the_child() -> None:
    code = "import os, sys; print(os.environ['KSERIES_TEST'], sys.stdin.read())"
    proc = run([sys.executable, "-c", code], env={"KSERIES_TEST": "seen"}, input_text="fed")
    assert proc.stdout.split() == ["seen", "fed"]


def test_child_has_no_terminal_input() -> None:
    proc = run([sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"])
    assert proc.stdout.strip() == "''"


def test_check_failure_is_one_line(tmp_path: Path) -> None:
    code = "import sys; print('first\\nsecond problem', file=sys.stderr); sys.exit(3)"
    with pytest.raises(KseriesError) as caught:
        run([sys.executable, "-c", code], what="the tool")
    assert str(caught.value) == "the tool failed (exit 3): second problem"
    assert not isinstance(caught.value, ToolTimeout)


def test_failure_without_check_is_returned() -> None:
    proc = run([sys.executable, "-c", "import sys; sys.exit(2)"], check=False)
    assert proc.returncode == 2


def test_missing_program_names_its_package(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KseriesError, match=r"'spatch' is not installed; install it "
                                           r"\(coccinelle\)"):
        run(["spatch", "--version"])
