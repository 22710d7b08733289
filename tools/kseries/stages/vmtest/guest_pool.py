"""Guests at once. A guest is one QEMU process with one vCPU, which TCG runs on one
host thread: on this 2-core host one guest left a core idle, and two at once take about
the time of one. The kernels are built first, one after the other (each build checks its
commit out in the one scratch worktree and uses every CPU); only the guest runs overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from kseries.kernel.arches import jobs

T = TypeVar("T")


def guest_workers(asked: int) -> int:
    """How many guests run at once: ASKED, or one per CPU when ASKED is 0."""
    return asked if asked > 0 else jobs()


def run_at_once(tasks: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Every task's result, in the order of TASKS, WORKERS running at once. On an error
    or Ctrl-C the tasks not started yet are dropped; the running guests end within their
    own time limits."""
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kseries-guest") as pool:
        futures: list[Future[T]] = [pool.submit(task) for task in tasks]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
