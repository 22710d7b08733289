"""Progress a person can follow (a heartbeat line while a long program runs) and the same
run as JSON lines (--events FILE)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kseries.core import events
from kseries.core.durations import previous, remember, timed_run
from kseries.core.proc import heartbeat, last_kbuild_line, run
from tests.conftest import run_cli


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def progress_lines() -> Iterator[list[str]]:
    logger = logging.getLogger("kseries")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def event_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "events.jsonl"
    events.record_events(path)
    yield path
    for handler in events.EVENTS.handlers:
        handler.close()
    events.EVENTS.handlers.clear()


SLOW_BUILD = ("import time\nprint('  CC      mm/memory_hotplug.o', flush=True)\n"
              "print('some note', flush=True)\ntime.sleep(1.6)\n")


def test_a_long_run_beats_with_its_last_kbuild_line_and_time_left(
        tmp_path: Path, progress_lines: list[str]) -> None:
    log = tmp_path / "build.log"
    proc = run([sys.executable, "-c", SLOW_BUILD], log=log, what="make bzImage",
               heartbeat_s=0.5, expected_s=60)
    assert proc.returncode == 0
    beats = [line for line in progress_lines if line.startswith("make bzImage: running")]
    assert 2 <= len(beats) <= 4, progress_lines
    assert beats[0].endswith("s left; now: CC      mm/memory_hotplug.o")
    assert "about 60 s left" in beats[0] or "about 59 s left" in beats[0]


def test_a_captured_run_beats_too_and_a_quick_one_does_not(progress_lines: list[str]) -> None:
    run([sys.executable, "-c", "import time; time.sleep(0.8)"], what="sleepy", heartbeat_s=0.3)
    run([sys.executable, "-c", "pass"], what="quick", heartbeat_s=5)
    assert any(line.startswith("sleepy: running") for line in progress_lines)
    assert not any(line.startswith("quick") for line in progress_lines)


def test_heartbeat_text_and_the_line_it_quotes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("$ make\n  CC      a.o\n  LD      vmlinux.o\nwarning: x\n\n")
    assert last_kbuild_line(log) == "LD      vmlinux.o"
    assert heartbeat("make", 95, 60, log) == (
        "make: running 95 s, past the last run's 60 s; now: LD      vmlinux.o")
    assert heartbeat("make", 5, None, None) == "make: running 5 s"
    log.write_text("no kbuild lines here\nlast one\n")
    assert last_kbuild_line(log) == "last one"


def test_every_command_is_a_start_and_an_end_event(event_file: Path) -> None:
    run([sys.executable, "-c", "raise SystemExit(3)"], check=False)
    start, end = events.read_events(event_file)
    assert start["event"] == "command-start" and end["event"] == "command-end"
    assert end["returncode"] == 3 and end["duration_s"] >= 0 and end["program"].startswith(
        "python")
    assert start["command"] == end["command"] and "time" in start


def test_a_span_ends_even_when_its_body_raises(event_file: Path) -> None:
    with pytest.raises(ValueError), events.span("stage", stage="build") as done:
        done["status"] = "fail"
        raise ValueError("boom")
    kinds = [(e["event"], e.get("status")) for e in events.read_events(event_file)]
    assert kinds == [("stage-start", None), ("stage-end", "fail")]


def test_durations_give_the_next_run_its_estimate(tmp_path: Path,
                                                  progress_lines: list[str]) -> None:
    assert previous(tmp_path, "k") is None
    remember(tmp_path, "k", 12.34)
    assert previous(tmp_path, "k") == 12.3
    (tmp_path / "durations.json").write_text("[not, a, dict")
    assert previous(tmp_path, "k") is None
    timed_run(tmp_path, "py", [sys.executable, "-c", "pass"])
    assert previous(tmp_path, "py") is not None


def test_events_option_writes_json_lines_or_says_why_not(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    run_cli("--events", path, "doctor")
    kinds = {e["event"] for e in events.read_events(path)}
    assert {"command-start", "command-end"} <= kinds
    blocked = tmp_path / "file"
    blocked.write_text("")
    bad = run_cli("--events", blocked / "ev.jsonl", "doctor")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("kseries: error: cannot write events to ")
    assert "give --events a writable file" in bad.stderr


def test_bench_takes_vmtest_figures_from_the_events() -> None:
    from tools.bench.vmtest import scenario_figures
    recorded = [
        {"event": "bench-scenario", "scenario": "kexec"},
        {"event": "guest-start"},
        {"event": "guest-first-result", "at_s": 4.2},
        {"event": "guest-phase", "phase": "boot", "duration_s": 6.0},
        {"event": "guest-phase", "phase": "grow", "duration_s": 3.5},
        {"event": "guest-end", "duration_s": 20.04},
        {"event": "bench-scenario", "scenario": "control"},
        {"event": "guest-end", "duration_s": 5.0},
        {"event": "guest-end", "duration_s": 2.0},
    ]
    assert scenario_figures(recorded) == {
        "kexec_first_result_s": 4.2, "kexec.boot_s": 6.0, "kexec.grow_s": 3.5,
        "kexec_guest_s": 20.0, "control_guest_s": 7.0}
