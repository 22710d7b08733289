"""The guest watcher's decisions without QEMU: per-phase and silence timeouts, the phase a
result line opens, the console tail a stopped guest is reported with."""

from __future__ import annotations

from kseries.kernel.qemu import Timeouts, _follow_phase, _stop_reason, _Watch, console_tail


def test_the_phase_follows_result_names() -> None:
    state = _Watch(start=0.0, last_output=0.0)
    _follow_phase("ok 1 boot.iomem_virtio_mem", state, 5.0)
    assert (state.phase, state.phase_since) == ("boot", 0.0)
    _follow_phase("not ok 2 grow.driver_replugged # timeout", state, 9.0)
    assert (state.phase, state.phase_since) == ("grow", 9.0)
    _follow_phase("# a comment about shrink.x", state, 12.0)
    assert state.phase == "grow"


def test_each_timeout_names_what_ran_too_long() -> None:
    limits = Timeouts(total_s=100, silent_s=20, phase_s=30)
    state = _Watch(start=0.0, last_output=0.0, phase="grow", phase_since=0.0)
    assert _stop_reason(state, limits, 10.0) is None
    state.last_output = 25.0
    assert _stop_reason(state, limits, 31.0) == "guest hung in phase grow: over 30 s in it"
    assert _stop_reason(state, limits, 46.0) == "guest hung: no output for 20 s (phase grow)"
    state.last_output, state.phase_since = 100.0, 100.0
    assert _stop_reason(state, limits, 101.0) == "no power-off within 100 s"


def test_console_tail_is_one_line_of_the_last_lines() -> None:
    text = "a\r\n\nb\nc\nd\ne\nf\n"
    assert console_tail(text) == "b | c | d | e | f"
    assert console_tail(text, 1) == "f"
    assert console_tail("") == "(no console output)"
