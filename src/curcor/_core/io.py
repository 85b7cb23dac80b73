"""Waiting for descriptors: the core of the network layer.

``wait_readable(fd)`` and ``wait_writable(fd)`` park the task until the
poller reports the descriptor ready (see ``poller.FdWait``);
``notify_closing(fd)`` must run before a descriptor is closed: it wakes
its waiters with ``ClosedResourceError`` and unregisters it, so a reused
descriptor number never receives a stale event.
"""

from __future__ import annotations

import errno
import types

from .errors import Cancelled
from .poller import BusyResourceError
from .scheduler import current_worker
from .traps import worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


class ClosedResourceError(OSError):
    """The socket (or descriptor) was closed, by this task or another one."""


@types.coroutine
def _wait(fd: int, writing: bool, owner: Any, edge: bool = False) -> Any:
    w, task = worker_and_task("curcor I/O")
    if task._cancel_pending:
        raise Cancelled()
    poller = w.sched.poller
    lock = poller.io_lock
    lock.acquire()
    # The owner's close sets ``closed`` before it unregisters under this
    # lock, so checking here means the number cannot have been reused.
    if owner is not None and owner.closed:
        lock.release()
        raise ClosedResourceError(f"descriptor {fd} was closed")
    try:
        st = poller.watch(fd, task, writing, owner, edge)
    except OSError as exc:
        lock.release()
        if exc.errno == errno.EBADF:
            raise ClosedResourceError(f"descriptor {fd} was closed") from None
        raise
    except BaseException:
        lock.release()
        raise
    if st is None:
        lock.release()  # ready already (an edge came after the EAGAIN)
        return None
    task._waiting_on = st
    if task._cancel_pending:
        # Withdraw (protocol step 4's re-check) before parking, lock held.
        st.take(not writing)
        poller._settle(st)
        lock.release()
        raise Cancelled()
    yield lock  # park; the poller's dispatch or closing ends the wait


def wait_readable(fd: int, owner: Any = None) -> Any:
    """Wait until ``fd`` can be read without blocking (or is at EOF).

    ``owner`` (optional) is the object that closes ``fd``; its ``closed``
    is checked under the poller's lock, closing a race with ``close()``.

    Raises:
        ClosedResourceError: the descriptor was closed while waiting.
        BusyResourceError: another task already waits to read it.
    """
    return _wait(fd, False, owner)


def wait_writable(fd: int, owner: Any = None) -> Any:
    """Wait until ``fd`` can be written without blocking (``owner``: as for
    ``wait_readable``).

    Raises:
        ClosedResourceError: the descriptor was closed while waiting.
        BusyResourceError: another task already waits to write it.
    """
    return _wait(fd, True, owner)


def retry_readable(fd: int, owner: Any) -> Any:
    """For a caller whose own read of ``fd`` just failed with EAGAIN: wait
    until a retry may succeed. Cheaper than ``wait_readable`` on epoll (no
    registration call), and only sound right after that failure (see
    poller.py). ``owner`` is required: the object that closes ``fd``.

    Raises:
        ClosedResourceError, BusyResourceError: as ``wait_readable``.
    """
    return _wait(fd, False, owner, True)


def retry_writable(fd: int, owner: Any) -> Any:
    """As ``retry_readable``, after a write failed with EAGAIN (or a
    non-blocking connect started)."""
    return _wait(fd, True, owner, True)


def notify_closing(fd: int) -> None:
    """Call before closing ``fd``: wake its waiters with ClosedResourceError
    and unregister it from the poller. Harmless outside a runtime."""
    w = current_worker()
    if w is not None:
        sched = w.sched
    else:
        from .runtime import running_scheduler

        sched = running_scheduler()  # type: ignore[assignment]
    if sched is None:
        return
    for task in sched.poller.closing(fd):
        sched.ready(
            task,
            exc=ClosedResourceError(
                f"descriptor {fd} was closed while this task waited on it"
            ),
        )


__all__ = [
    "BusyResourceError",
    "ClosedResourceError",
    "notify_closing",
    "wait_readable",
    "wait_writable",
]
