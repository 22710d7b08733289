"""Arches built side by side at one commit (build/execute.each_arch): really at once, and
a failure on one arch stops the make running beside it (proc.run's stop event)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kseries.core.errors import KseriesError
from kseries.core.proc import Stopped, run
from kseries.stages.build.execute import each_arch


def test_two_arches_run_at_once() -> None:
    both = threading.Barrier(2, timeout=5)
    seen: list[str] = []

    def work(arch_run: Any, stop: threading.Event | None) -> None:
        assert stop is not None
        both.wait()  # returns only when the other arch is building too
        seen.append(arch_run)
    each_arch(["x86_64", "s390"], work, 2)  # type: ignore[list-item]
    assert sorted(seen) == ["s390", "x86_64"]


def test_one_worker_builds_in_turn_in_this_thread() -> None:
    threads: list[threading.Thread] = []
    each_arch(["a", "b"], lambda _r, stop: threads.append(threading.current_thread())  # type: ignore[list-item]
              if stop is None else None, 1)
    assert threads == [threading.main_thread()] * 2


def test_a_failing_arch_stops_the_make_beside_it() -> None:
    ended: dict[str, BaseException] = {}

    def work(arch_run: Any, stop: threading.Event | None) -> None:
        if arch_run == "broken":
            time.sleep(0.3)
            raise KseriesError("broken: make failed")
        try:
            run(["sleep", "60"], stop=stop, check=False)
        except Stopped as err:
            ended[arch_run] = err
            raise
    start = time.monotonic()
    with pytest.raises(KseriesError, match="broken: make failed"):
        each_arch(["long", "broken"], work, 2)  # type: ignore[list-item]
    assert time.monotonic() - start < 10
    assert "stopped" in str(ended["long"])
