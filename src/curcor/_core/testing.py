"""Deterministic testing support inside the core: the all-blocked barrier."""

from __future__ import annotations

from .errors import Cancelled
from .task import Task
from .traps import end_wait, park, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


class _Barrier:
    """The ``_waiting_on`` of tasks in ``wait_all_tasks_blocked``."""

    def __init__(self, sched: Any) -> None:
        self.sched = sched

    def _abort(self, task: Task) -> bool:
        with self.sched.lock:
            return end_wait(task, self)


async def wait_all_tasks_blocked() -> None:
    """Wait until every other task is blocked and nothing is runnable.

    Useful in tests: after it returns, each task has run as far as it can
    without a timer, I/O or thread firing. It runs before a fake clock jumps.
    """
    w, task = worker_and_task("wait_all_tasks_blocked()")
    if task._cancel_pending:
        raise Cancelled()
    sched = w.sched
    sched.lock.acquire()
    sched.blocked_waiters.append((task, task._wait_seq))
    await park(task, _Barrier(sched), sched.lock)
