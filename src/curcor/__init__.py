"""Curcor: Go-style concurrency for Python on an M:N scheduler.

The public names, nothing else. Start with ``curcor.run(main())``; see
docs/guide.md for a tour.
"""

from __future__ import annotations

from ._core.cancel import CancelScope, move_on_after, timeout
from ._core.chan import Channel, recv, select, send
from ._core.clock import Ticker, Timer, after, sleep
from ._core.context import Context, ContextCancelled, DeadlineExceeded, background
from ._core.errors import (
    Cancelled,
    ChannelClosed,
    ConfigError,
    DeadlockError,
    RuntimeMisuse,
    Terminated,
    ThreadCreateError,
    WouldBlock,
)
from ._core.group import TASK_STATUS_IGNORED, TaskGroup
from ._core.runtime import current_task, go, now, run, stats
from ._core.sync import Condition, Event, Mutex, Once, RWMutex, Semaphore, WaitGroup
from ._core.task import Task
from ._core.threads import from_thread, to_thread
from ._core.traps import yield_now


def __getattr__(name: str) -> object:
    # Loaded on first use: dataclasses and the version lookup cost import time.
    if name in ("Stats", "WorkerStats"):
        from ._core import stats as _stats

        return getattr(_stats, name)
    if name == "__version__":
        from .cli.version import get_version

        return get_version()
    raise AttributeError(f"module 'curcor' has no attribute {name!r}")


__all__ = [
    "TASK_STATUS_IGNORED",
    "CancelScope",
    "Cancelled",
    "Channel",
    "ChannelClosed",
    "Condition",
    "ConfigError",
    "Context",
    "ContextCancelled",
    "DeadlineExceeded",
    "DeadlockError",
    "Event",
    "Mutex",
    "Once",
    "RWMutex",
    "RuntimeMisuse",
    "Semaphore",
    "Stats",
    "Task",
    "TaskGroup",
    "Terminated",
    "ThreadCreateError",
    "Ticker",
    "Timer",
    "WaitGroup",
    "WorkerStats",
    "WouldBlock",
    "after",
    "background",
    "current_task",
    "from_thread",
    "go",
    "move_on_after",
    "now",
    "recv",
    "run",
    "select",
    "send",
    "sleep",
    "stats",
    "timeout",
    "to_thread",
    "yield_now",
]
