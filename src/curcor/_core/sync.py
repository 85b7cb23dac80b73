"""Synchronisation between tasks: WaitGroup, Mutex, RWMutex, Semaphore, Event,
Once and Condition.

Every primitive hands ownership over in FIFO order: a release gives the
lock (or permit) straight to the first waiter, so a task arriving later
cannot overtake one that waits, and no waiter starves. Each object's state
is guarded by its own ``_lock`` (a ``threading.Lock``); waiters are woken
after that lock is released.
"""

from __future__ import annotations

import threading

from .errors import Cancelled, RuntimeMisuse
from .scheduler import _tls
from .traps import Waitable, WaitQueue, claim, end_wait, park, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


def _ready_all(entries: list[tuple[Any, ...]], value: Any = None) -> None:
    """Resume claimed waiters; from a worker, or from a plain thread."""
    if not entries:
        return
    w = getattr(_tls, "worker", None)
    if w is not None:
        sched = w.sched
    else:
        from .runtime import running_scheduler

        sched = running_scheduler()
        if sched is None:
            # Their runtime has ended (a finally block of a task closed at
            # shutdown sets an event, say): they will never run again.
            return
    for entry in entries:
        sched.ready(entry[0], value)


def _pop_valid(q: WaitQueue) -> tuple[Any, ...] | None:
    """Called with the owner's lock held: the first live entry, claimed."""
    while q:
        entry = q.popleft()
        if claim(entry):
            return entry
    return None


def _has_live(q: WaitQueue) -> bool:
    """Called with the owner's lock held: is a live waiter queued? Drops stale
    entries from the head, so the cost is amortised O(1)."""
    while q:
        head = q[0]
        if head[0] is not None and head[0]._wait_seq == head[1]:
            return True
        q.popleft()
    return False


async def _park_locked(obj: Any, task: Any, value: Any = None) -> Any:
    obj._waiters.push((task, task._wait_seq, value, -1, False))
    return await park(task, obj, obj._lock)


class WaitGroup(Waitable):
    """Go's WaitGroup: ``add(n)`` work items, ``done()`` each, ``await wait()``."""

    __slots__ = ("_count", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0  # guarded by _lock; never negative
        self._waiters = WaitQueue()

    def add(self, n: int = 1) -> None:
        """Add ``n`` (may be negative) to the counter.

        Raises:
            ValueError: the counter would go below zero.
            TypeError: ``n`` is not an int.
        """
        if type(n) is not int and (isinstance(n, bool) or not isinstance(n, int)):
            raise TypeError(f"WaitGroup.add() takes an int, not {n!r}")
        with self._lock:
            if self._count + n < 0:
                raise ValueError(
                    f"WaitGroup counter would go negative ({self._count} + {n}): "
                    "done() or add(-n) was called more times than add() counted; "
                    "call add(n) before starting the work"
                )
            self._count += n
            woken = self._release_all() if self._count == 0 else []
        _ready_all(woken)

    def done(self) -> None:
        """Mark one item done (``add(-1)``, written out: it is the hot call).

        Raises:
            ValueError: the counter would go below zero.
        """
        lock = self._lock
        lock.acquire()
        count = self._count - 1
        if count > 0:
            self._count = count
            lock.release()
            return
        lock.release()
        self.add(-1)  # zero or below: the general path wakes or raises

    def _release_all(self) -> list[tuple[Any, ...]]:
        woken = [e for e in self._waiters if claim(e)]
        self._waiters.clear()
        return woken

    @property
    def count(self) -> int:
        """The counter now."""
        return self._count

    async def wait(self) -> None:
        """Wait until the counter is zero."""
        _w, task = worker_and_task("WaitGroup.wait()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        if self._count == 0:
            self._lock.release()
            return
        await _park_locked(self, task)


class Mutex(Waitable):
    """A mutual-exclusion lock for tasks: ``async with mu:`` or lock/unlock.

    Not tied to a task (as in Go): any task may unlock it.
    """

    __slots__ = ("_lock", "_locked", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locked = False  # guarded by _lock
        self._waiters = WaitQueue()

    def locked(self) -> bool:
        """True while some task holds the mutex."""
        return self._locked

    async def lock(self) -> None:
        """Take the mutex, waiting in FIFO order while another task holds it."""
        _w, task = worker_and_task("Mutex.lock()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        if not self._locked:
            self._locked = True
            self._lock.release()
            return
        await _park_locked(self, task)  # the unlocker hands it over to us

    def try_lock(self) -> bool:
        """Take the mutex if it is free; never waits."""
        with self._lock:
            if self._locked:
                return False
            self._locked = True
            return True

    def unlock(self) -> None:
        """Release the mutex, handing it to the first waiter if any.

        Raises:
            RuntimeMisuse: the mutex is not locked.
        """
        with self._lock:
            if not self._locked:
                raise RuntimeMisuse(
                    "unlock of unlocked Mutex: unlock() must follow a lock(); "
                    "prefer `async with mutex:`, which pairs them"
                )
            entry = _pop_valid(self._waiters)
            if entry is None:
                self._locked = False
        if entry is not None:
            _ready_all([entry])

    async def __aenter__(self) -> Mutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.unlock()


class Semaphore(Waitable):
    """A counting semaphore with FIFO hand-off: ``async with sem:``."""

    __slots__ = ("_lock", "_value", "_waiters")

    def __init__(self, value: int = 1) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Semaphore(value) takes an int >= 0, not {value!r}")
        if value < 0:
            raise ValueError(f"Semaphore(value) takes an int >= 0, not {value!r}")
        self._lock = threading.Lock()
        self._value = value  # guarded by _lock
        self._waiters = WaitQueue()

    @property
    def value(self) -> int:
        """Permits available now."""
        return self._value

    async def acquire(self) -> None:
        """Take a permit, waiting in FIFO order when none is left."""
        _w, task = worker_and_task("Semaphore.acquire()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        if self._value > 0 and not _has_live(self._waiters):
            self._value -= 1
            self._lock.release()
            return
        await _park_locked(self, task)

    def try_acquire(self) -> bool:
        """Take a permit if one is free; never waits."""
        with self._lock:
            if self._value > 0:
                self._value -= 1
                return True
            return False

    def release(self) -> None:
        """Return a permit, handing it to the first waiter if any."""
        with self._lock:
            entry = _pop_valid(self._waiters)
            if entry is None:
                self._value += 1
        if entry is not None:
            _ready_all([entry])

    async def __aenter__(self) -> Semaphore:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


class Event(Waitable):
    """A flag tasks can wait for: ``set()``, ``clear()``, ``await wait()``."""

    __slots__ = ("_flag", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flag = False  # guarded by _lock
        self._waiters = WaitQueue()

    def is_set(self) -> bool:
        """True while the flag is set."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        with self._lock:
            self._flag = True
            woken = [e for e in self._waiters if claim(e)]
            self._waiters.clear()
        _ready_all(woken)

    def clear(self) -> None:
        """Clear the flag; later ``wait`` calls block again."""
        with self._lock:
            self._flag = False

    async def wait(self) -> None:
        """Wait until the flag is set (returns at once if it is)."""
        _w, task = worker_and_task("Event.wait()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        if self._flag:
            self._lock.release()
            return
        await _park_locked(self, task)


class Once:
    """Run a function exactly once, however many tasks ask: ``await once.do(fn)``.

    As in Go, a call that raised still counts as done; later callers get None.
    """

    __slots__ = ("_done", "_event", "_lock", "_running")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False  # guarded by _lock
        self._done = False
        self._event = Event()

    def done(self) -> bool:
        """True once the function has run."""
        return self._done

    async def do(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` (awaiting it if it is a coroutine function) once.

        Returns:
            Its value for the caller that ran it; None for the others, which
            wait until it finished.
        """
        if not callable(fn):
            if hasattr(fn, "close"):
                fn.close()  # a coroutine object: no "never awaited" warning
            raise TypeError(
                f"Once.do() takes a function and its arguments, not {fn!r}: "
                "write once.do(setup), not once.do(setup())"
            )
        with self._lock:
            first = not self._running
            self._running = True
        if not first:
            await self._event.wait()
            return None
        try:
            result = fn(*args)
            if hasattr(result, "__await__") or hasattr(result, "gi_code"):
                result = await result  # (a @types.coroutine generator too)
            return result
        finally:
            self._done = True
            self._event.set()


class RWMutex(Waitable):
    """A readers-writer lock with FIFO hand-off (no writer starvation).

    ``await rw.rlock()`` / ``rw.runlock()`` for readers, ``await rw.lock()`` /
    ``rw.unlock()`` for the writer; ``async with rw.reading()`` and
    ``async with rw.writing()`` do both halves.
    """

    __slots__ = ("_lock", "_readers", "_waiters", "_writer")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0  # guarded by _lock: readers holding it
        self._writer = False  # guarded by _lock: a writer holds it
        self._waiters = WaitQueue()  # entries' value: True for a writer

    def _queued(self) -> bool:
        return _has_live(self._waiters)

    async def rlock(self) -> None:
        """Take a read lock; waits behind a writer that holds or waits."""
        _w, task = worker_and_task("RWMutex.rlock()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        if not self._writer and not self._queued():
            self._readers += 1
            self._lock.release()
            return
        await _park_locked(self, task, False)

    async def lock(self) -> None:
        """Take the write lock; waits for readers and writers ahead of it."""
        _w, task = worker_and_task("RWMutex.lock()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        if not self._writer and self._readers == 0 and not self._queued():
            self._writer = True
            self._lock.release()
            return
        await _park_locked(self, task, True)

    def runlock(self) -> None:
        """Release a read lock.

        Raises:
            RuntimeMisuse: no read lock is held.
        """
        with self._lock:
            if self._readers <= 0:
                raise RuntimeMisuse("runlock of RWMutex without a read lock held")
            self._readers -= 1
            woken = self._grant()
        _ready_all(woken)

    def unlock(self) -> None:
        """Release the write lock.

        Raises:
            RuntimeMisuse: the write lock is not held.
        """
        with self._lock:
            if not self._writer:
                raise RuntimeMisuse("unlock of RWMutex without the write lock held")
            self._writer = False
            woken = self._grant()
        _ready_all(woken)

    def _abort(self, task: Any) -> bool:
        """Cancellation of a queued waiter; readers behind it may now go."""
        with self._lock:
            if not end_wait(task, self):
                return False
            woken = self._grant()
        _ready_all(woken)
        return True

    def _grant(self) -> list[tuple[Any, ...]]:
        """Called with ``_lock`` held: hand the lock to waiters at the head."""
        woken: list[tuple[Any, ...]] = []
        q = self._waiters
        while q and not self._writer:
            head = q[0]
            if head[0]._wait_seq != head[1]:
                q.popleft()
                continue
            if head[2]:  # a writer: only when no reader holds it
                if self._readers:
                    break
                q.popleft()
                claim(head)
                self._writer = True
                woken.append(head)
                break
            q.popleft()
            claim(head)
            self._readers += 1
            woken.append(head)
        return woken

    def reading(self) -> _Held:
        """``async with rw.reading():`` holds a read lock for the block."""
        return _Held(self.rlock, self.runlock)

    def writing(self) -> _Held:
        """``async with rw.writing():`` holds the write lock for the block."""
        return _Held(self.lock, self.unlock)

    async def __aenter__(self) -> RWMutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.unlock()


class _Held:
    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Any, release: Any) -> None:
        self._acquire = acquire
        self._release = release

    async def __aenter__(self) -> None:
        await self._acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self._release()


class Condition(Waitable):
    """A condition variable over a ``Mutex``: ``async with cond: await
    cond.wait()``; ``notify(n)`` and ``notify_all()`` wake in FIFO order."""

    __slots__ = ("_lock", "_waiters", "mutex")

    def __init__(self, mutex: Mutex | None = None) -> None:
        self.mutex = mutex if mutex is not None else Mutex()
        self._lock = threading.Lock()
        self._waiters = WaitQueue()

    async def wait(self) -> None:
        """Release the mutex, wait for a notify, take the mutex back.

        The mutex is held again when this returns or raises (cancellation
        included).

        Raises:
            RuntimeMisuse: the mutex is not held.
        """
        if not self.mutex.locked():
            raise RuntimeMisuse(
                "Condition.wait() needs the condition's mutex held; call it "
                "inside `async with cond:`"
            )
        _w, task = worker_and_task("Condition.wait()")
        if task._cancel_pending:
            raise Cancelled()
        self._lock.acquire()
        self.mutex.unlock()
        try:
            await _park_locked(self, task)
        finally:
            await _relock(self.mutex)

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting tasks."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"Condition.notify(n) takes an int >= 0, not {n!r}")
        if n < 0:
            raise ValueError(f"Condition.notify(n) takes an int >= 0, not {n!r}")
        woken: list[tuple[Any, ...]] = []
        with self._lock:
            while len(woken) < n:
                entry = _pop_valid(self._waiters)
                if entry is None:
                    break
                woken.append(entry)
        _ready_all(woken)

    def notify_all(self) -> None:
        """Wake every waiting task."""
        with self._lock:
            woken = [e for e in self._waiters if claim(e)]
            self._waiters.clear()
        _ready_all(woken)

    async def __aenter__(self) -> Condition:
        await self.mutex.lock()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.mutex.unlock()


async def _relock(mutex: Mutex) -> None:
    """Take ``mutex`` even while cancelled (a shielded wait)."""
    from .cancel import CancelScope

    with CancelScope(shield=True):
        await mutex.lock()
