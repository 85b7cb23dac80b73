"""The two ways a task gives its worker control: yield, or park on a wait list.

These are generator-based coroutines (``types.coroutine``) so an ``await``
of them costs one generator and no future. See "The wait protocol" in
scheduler.py for the rules ``park`` relies on.
"""

from __future__ import annotations

import types
from collections import deque

from .errors import Cancelled, RuntimeMisuse
from .scheduler import YIELD, Worker, _tls
from .task import Task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


# What ``await YIELD_NOW`` iterates: the one trap, then the end.
_YIELD_ONCE = range(YIELD, YIELD + 1)


class YieldNow:
    """An awaitable that yields YIELD once: ``await YIELD_NOW``.

    Its ``__await__`` is the ``__iter__`` of ``range(YIELD, YIELD + 1)``, a
    C method, so no Python frame runs: each await gets a range iterator (48
    bytes, not tracked by the garbage collector, freed when the await ends)
    that yields the trap, and the worker resumes the task with None, which
    ends it. A thrown exception (a cancellation) is raised at the ``await``,
    since the iterator has no ``throw``. Measured per ``sleep(0)``: 91 ns,
    against 313 ns for an object with Python ``__next__`` and ``send`` and
    134 ns for a generator (about 200 bytes, tracked).
    """

    __slots__ = ()

    __await__ = _YIELD_ONCE.__iter__


# (Here, not in scheduler.py: a compiled build compiles that module, and a
# compiled class cannot take a C method as its ``__await__``.)
YIELD_NOW = YieldNow()


class ShuffledDeque(deque):
    """A run queue for shuffle mode (tests): each append lands at random.

    (Here rather than in scheduler.py, for the reason given at YIELD_NOW.)
    """

    rng: Any = None

    def append(self, task: Any) -> None:
        self.insert(self.rng.randrange(len(self) + 1), task)


async def _sleep0(awaitable: Any) -> Any:
    return await awaitable


def await_once(awaitable: YieldNow) -> Any:
    """A coroutine for ``go(curcor.sleep(0))``: the task steps it, named
    ``sleep`` in both builds (here, in a module never compiled)."""
    coro = _sleep0(awaitable)
    coro.__qualname__ = "sleep"  # type: ignore[attr-defined]
    return coro


def worker_and_task(what: str) -> tuple[Worker, Task]:
    """The current worker and task, or a misuse error naming ``what``."""
    try:
        w: Worker = _tls.worker
        task = w.current
    except AttributeError:
        task = None
    if task is None:
        raise RuntimeMisuse(
            f"{what} was used outside a curcor task; run your coroutine with "
            "curcor.run(main()) and start others with curcor.go(coro()). From a "
            "plain thread, use curcor.from_thread(fn, *args)"
        )
    return w, task


def yield_now() -> Any:
    """Let other tasks run; the task is requeued at the tail.

    The same as ``await curcor.sleep(0)``.

    Raises:
        Cancelled: an enclosing scope was cancelled.
    """
    task = worker_and_task("curcor.yield_now()")[1]
    if task._cancel_pending:
        raise Cancelled()
    return YIELD_NOW


@types.coroutine
def park(task: Task, obj: Any, lock: Any) -> Any:
    """Step 2 of the wait protocol; called with ``lock`` held, entry queued.

    Returns the value the waker resumed the task with, or raises what it
    threw in (``Cancelled`` when the wait was aborted).
    """
    task._waiting_on = obj
    if task._cancel_pending:
        # Withdraw: the queued entry goes stale with the bumped sequence.
        task._wait_seq += 1
        task._waiting_on = None
        if type(lock) is tuple:
            for each in lock:
                each.release()
        else:
            lock.release()
        raise Cancelled()
    return (yield lock)


@types.coroutine
def park_unabortable(task: Task, obj: Any, lock: Any) -> Any:
    """``park`` for waits that must finish even when cancelled (a TaskGroup
    waiting for its children); ``obj._abort`` always refuses."""
    task._waiting_on = obj
    return (yield lock)


class WaitQueue(deque):
    """A FIFO of wait entries ``(task, seq, value, case)``; owner's lock held.

    Entries go stale when their wait ends some other way; ``push`` compacts
    the queue when it has grown to twice its last live size, so stale
    entries cost amortised O(1). Hot paths test ``len(q) > 16`` first, which
    is cheaper than reading ``limit`` (never below 16).
    """

    limit = 16

    def push(self, entry: tuple[Any, ...]) -> None:
        """Append ``entry``, dropping stale entries now and then."""
        self.append(entry)
        if len(self) > self.limit:
            self.compact()

    def compact(self) -> None:
        """Drop stale entries; the next compaction waits for twice the rest."""
        live = [e for e in self if e[0] is not None and e[0]._wait_seq == e[1]]
        self.clear()
        self.extend(live)
        self.limit = max(16, 2 * len(live))


def end_wait(task: Task, obj: Any) -> bool:
    """Called with ``obj``'s lock held: end ``task``'s wait on ``obj``.

    Returns False when the task no longer waits there (someone else ended
    the wait first); see "The wait protocol", steps 3-4, in scheduler.py.
    """
    if task._waiting_on is not obj:
        return False
    task._wait_seq += 1
    task._waiting_on = None
    return True


class Waitable:
    """Base of objects tasks wait on under ``self._lock`` (plain waits)."""

    __slots__ = ()
    _lock: Any

    def _abort(self, task: Task) -> bool:
        """End ``task``'s wait on this object early; True if it was waiting."""
        with self._lock:
            return end_wait(task, self)


def claim(entry: tuple[Any, ...]) -> bool:
    """Called with the queue owner's lock held: end a plain entry's wait."""
    task = entry[0]
    if task._wait_seq != entry[1]:
        return False
    task._wait_seq += 1
    task._waiting_on = None
    return True
