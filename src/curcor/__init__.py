"""Curcor: Go-style concurrency for Python on an M:N scheduler.

The public names, nothing else. Start with ``curcor.run(main())``; see
docs/guide.md for a tour.
"""

from __future__ import annotations

import sys as _sys

if _sys.version_info < (3, 11):  # noqa: UP036 - the one clear line R-CONF asks for
    raise ImportError(
        f"curcor needs Python 3.11 or newer; this is Python "
        f"{_sys.version_info[0]}.{_sys.version_info[1]}"
    )

TYPE_CHECKING = False
if TYPE_CHECKING:
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
    from ._core.stats import Stats, WorkerStats
    from ._core.sync import Condition, Event, Mutex, Once, RWMutex, Semaphore, WaitGroup
    from ._core.task import Task
    from ._core.threads import from_thread, to_thread
    from ._core.traps import yield_now

# Public names load on first use, so `import curcor` and `curcor version`
# stay fast (docs/architecture.md, "Import time").
_LAZY = {
    "CancelScope": "cancel",
    "Cancelled": "errors",
    "Channel": "chan",
    "ChannelClosed": "errors",
    "Condition": "sync",
    "ConfigError": "errors",
    "Context": "context",
    "ContextCancelled": "context",
    "DeadlineExceeded": "context",
    "DeadlockError": "errors",
    "Event": "sync",
    "Mutex": "sync",
    "Once": "sync",
    "RWMutex": "sync",
    "RuntimeMisuse": "errors",
    "Semaphore": "sync",
    "TASK_STATUS_IGNORED": "group",
    "Task": "task",
    "TaskGroup": "group",
    "Terminated": "errors",
    "ThreadCreateError": "errors",
    "Ticker": "clock",
    "Timer": "clock",
    "WaitGroup": "sync",
    "WouldBlock": "errors",
    "after": "clock",
    "background": "context",
    "current_task": "runtime",
    "from_thread": "threads",
    "go": "runtime",
    "move_on_after": "cancel",
    "now": "runtime",
    "recv": "chan",
    "run": "runtime",
    "select": "chan",
    "send": "chan",
    "sleep": "clock",
    "stats": "runtime",
    "timeout": "cancel",
    "to_thread": "threads",
    "yield_now": "traps",
    "Stats": "stats",
    "WorkerStats": "stats",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(f"curcor._core.{module}"), name)
        globals()[name] = value
        return value
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
