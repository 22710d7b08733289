"""Guests at once. A guest is one QEMU process with one vCPU, which TCG runs on one host
thread: on this 2-core host one guest left a core idle, and two at once take about the
time of one. The kernels are built first, one after the other (each build checks its commit
out in the one scratch worktree and uses every CPU); only the guest runs overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from kseries.core import at_once
from kseries.kernel.arches import jobs

T = TypeVar("T")


def guest_workers(asked: int) -> int:
    """How many guests run at once: ASKED, or one per CPU when ASKED is 0."""
    return asked if asked > 0 else jobs()


def run_at_once(guests: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Every guest run's result, in order, WORKERS at once. On an error or Ctrl-C the runs
    not started yet are dropped; a running guest ends within its own time limits."""
    return at_once.run_at_once([_ignoring_stop(g) for g in guests], workers, "kseries-guest")


def _ignoring_stop(guest: Callable[[], T]) -> at_once.Task[T]:
    return lambda _stop: guest()
