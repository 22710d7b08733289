"""Guests at once (vmtest/guest_pool.py): results in order, really side by side, an error
stops what has not started; --guests on the command line."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from kseries.core.errors import KseriesError
from kseries.stages.vmtest.guest import VmOptions
from kseries.stages.vmtest.guest_pool import guest_workers, run_at_once
from kseries.stages.vmtest.options import guests_from, options_to_args


def test_results_keep_the_order_of_the_tasks() -> None:
    def task(n: int) -> Callable[[], int]:
        def run() -> int:
            time.sleep(0.05 * (5 - n))  # the first finishes last
            return n
        return run
    assert run_at_once([task(n) for n in range(5)], 2) == [0, 1, 2, 3, 4]


def test_two_workers_run_two_tasks_at_once_and_one_runs_them_in_turn() -> None:
    both = threading.Barrier(2, timeout=5)

    def meet() -> str:
        both.wait()  # only returns when the other task is running too
        return threading.current_thread().name
    names = run_at_once([meet, meet], 2)
    assert len(set(names)) == 2 and all(n.startswith("kseries-guest") for n in names)
    assert run_at_once([threading.current_thread] * 2, 1) == [threading.current_thread()] * 2


def test_an_error_is_raised_and_tasks_not_started_are_dropped() -> None:
    started: list[int] = []

    def task(n: int) -> Callable[[], int]:
        def run() -> int:
            started.append(n)
            if n == 0:
                raise KseriesError("guest 0 failed")
            time.sleep(0.2)
            return n
        return run
    with pytest.raises(KseriesError, match="guest 0 failed"):
        run_at_once([task(n) for n in range(8)], 2)
    assert len(started) < 8


def test_guests_option() -> None:
    assert guest_workers(3) == 3 and guest_workers(0) >= 1
    assert options_to_args(VmOptions(guests=1)) == ["--guests=1"]
    assert options_to_args(VmOptions()) == []
    with pytest.raises(KseriesError, match="--guests: -1 is negative"):
        guests_from(-1)
