"""Tasks at once in threads, for work that waits on external programs (makes, guests): the
results in the order of the tasks; the first failure (or Ctrl-C, which only the main
thread gets) sets the stop event the tasks pass to proc.run, which kills the programs
still running, and drops the tasks not started yet."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
Task = Callable[[threading.Event | None], T]


def run_at_once(tasks: Sequence[Task[T]], workers: int, name: str = "kseries") -> list[T]:
    """Every task's result in order, WORKERS at once; with one worker (or one task) they run
    in turn in this thread and get no stop event."""
    if workers <= 1 or len(tasks) <= 1:
        return [task(None) for task in tasks]
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        futures: list[Future[T]] = [pool.submit(task, stop) for task in tasks]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and not f.cancelled()
                           and f.exception() is not None), None)
            if failed is not None:
                failed.result()  # raises its exception
            return [future.result() for future in futures]
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
