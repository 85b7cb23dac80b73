"""Blocking work on a bounded thread pool, and calls into the runtime from
plain threads: ``to_thread`` and ``from_thread``.
"""

from __future__ import annotations

import os
import queue
import threading

from .errors import Cancelled, RuntimeMisuse, check_seconds
from .scheduler import current_worker
from .task import RUNNABLE, Task
from .traps import end_wait, park, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

_STOP: Any = object()


class _Job:
    """One ``to_thread`` call; its task's wait ends under ``_lock``."""

    __slots__ = ("_lock", "args", "fn", "seq", "task")

    def __init__(self, fn: Any, args: tuple[Any, ...], task: Task) -> None:
        self._lock = threading.Lock()
        self.fn = fn
        self.args = args
        self.task: Task | None = task
        self.seq = task._wait_seq

    def _abort(self, task: Task) -> bool:
        """Cancellation: give up on the result; the thread runs on, unseen."""
        with self._lock:
            if not end_wait(task, self):
                return False
            self.task = None
            return True


class ThreadPool:
    """The runtime's bounded pool of threads for ``to_thread``.

    Threads start on demand up to ``size`` and stay until shutdown. Lock
    rule: ``_idle``, ``_threads`` and ``_busy`` are guarded by ``_lock``;
    jobs travel through a ``SimpleQueue``, itself thread-safe.
    """

    def __init__(self, sched: Any, size: int) -> None:
        self.sched = sched
        self.size = size
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._busy: set[threading.Thread] = set()  # running a call now
        self._idle = 0

    def submit(self, job: _Job) -> None:
        """Queue ``job``, starting a thread when none is idle and room remains."""
        with self.sched.lock:
            self.sched.thread_work += 1
        with self._lock:
            start = self._idle == 0 and len(self._threads) < self.size
            if start:
                t = threading.Thread(
                    target=self._serve,
                    name=f"curcor-thread-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(t)
            else:
                self._idle -= 1
        if start:
            t.start()
            assert t.ident is not None
            self.sched.runtime_threads.add(t.ident)
            from .runtime import inherit_non_daemon

            inherit_non_daemon(t)
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            me = threading.current_thread()
            with self._lock:
                self._busy.add(me)
            self._run(job)
            with self._lock:
                self._busy.discard(me)
                self._idle += 1

    def _run(self, job: _Job) -> None:
        try:
            value, exc = job.fn(*job.args), None
        except BaseException as error:
            value, exc = None, error
        job.fn = None
        job.args = ()
        with job._lock:
            task = job.task
            job.task = None
            if task is not None:
                if task._wait_seq == job.seq and task._waiting_on is job:
                    task._wait_seq += 1
                    task._waiting_on = None
                else:
                    task = None  # the wait ended already (cancelled)
        # Count the call finished and queue its task in one step under the
        # scheduler lock, so neither stats nor the deadlock check sees the
        # call gone before its task is runnable.
        sched = self.sched
        with sched.lock:
            sched.thread_work -= 1
            if task is not None:
                task._value = value
                task._exc = exc
                task._state = RUNNABLE
                sched.gq.append(task)
                sched.wake_one()
            elif sched.thread_work == 0:
                sched.wake_one()  # a worker re-checks for deadlock

    def shutdown(self) -> None:
        """Stop idle threads; threads still running abandoned calls finish
        on their own (they are daemon threads)."""
        with self._lock:
            threads = list(self._threads)
            busy = set(self._busy)
        for _ in threads:
            self._jobs.put(_STOP)
        # Only idle threads are waited for (they take a stop at once); one
        # still in an abandoned call would hold run() up for nothing.
        for t in threads:
            if t not in busy:
                t.join(timeout=0.5)


def _pool(sched: Any) -> ThreadPool:
    from .runtime import running_runtime

    rt = running_runtime()
    assert rt is not None
    if rt.pool is None:
        with sched.lock:
            if rt.pool is None:
                size = int(getattr(rt.config, "to_thread_max", 0) or 0)
                if size < 1:
                    size = min(32, (os.cpu_count() or 1) + 4)
                rt.pool = ThreadPool(sched, size)
    return rt.pool


def _is_async_function(fn: Any) -> bool:
    """True for an ``async def`` function (or a partial of one)."""
    import inspect

    while hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        fn = fn.func
    return inspect.iscoroutinefunction(fn)


async def to_thread(fn: Any, *args: Any) -> Any:
    """Run the blocking ``fn(*args)`` on the runtime's thread pool; await it.

    The pool holds at most ``to_thread_max`` threads. The call runs in a
    copy of the task's context variables. When the awaiting task is
    cancelled, control returns at once and the call's eventual result is
    dropped.

    Raises:
        Whatever ``fn`` raised.
    """
    if not callable(fn):
        raise TypeError(
            f"to_thread() takes a function and its arguments, not {fn!r}: "
            "write curcor.to_thread(fn, arg), not curcor.to_thread(fn(arg))"
        )
    if _is_async_function(fn):
        raise TypeError(
            f"to_thread() runs a plain blocking function in a thread, and "
            f"{getattr(fn, '__name__', fn)!r} is an async function: await it "
            "directly, or start it with curcor.go()"
        )
    w, task = worker_and_task("curcor.to_thread()")
    if task._cancel_pending:
        raise Cancelled()
    pool = _pool(w.sched)
    if task._ctx is not None or len(w.base):
        # The call sees the task's context variables, as asyncio.to_thread.
        import contextvars

        args = (fn, *args)
        fn = contextvars.copy_context().run
    job = _Job(fn, args, task)
    job._lock.acquire()
    pool.submit(job)
    return await park(task, job, job._lock)


def _awaitable(value: Any) -> bool:
    """``inspect.isawaitable`` (generator-based coroutines included)."""
    import inspect

    return inspect.isawaitable(value)


def from_thread(fn: Any, *args: Any, timeout: float | None = None) -> Any:
    """From a plain thread: run ``await fn(*args)`` as a task, return its value.

    ``fn`` is an async function, a callable returning an awaitable (such as
    ``ch.send``), or a plain function (such as ``ch.close``), which then runs
    on a worker. With ``timeout`` (seconds, real time), a call that
    has not ended by then is cancelled and ``TimeoutError`` is raised.

    Raises:
        RuntimeMisuse: no runtime is running, or called from inside one.
        TimeoutError: ``timeout`` passed first.
        Whatever the coroutine raised.
    """
    from .runtime import running_runtime

    if timeout is not None:  # checked before anything starts
        timeout = check_seconds(timeout, "curcor.from_thread(timeout=)")
    if current_worker() is not None:
        raise RuntimeMisuse(
            "curcor.from_thread() was called from inside the runtime; just "
            "`await fn(*args)` there"
        )
    rt = running_runtime()
    if rt is None or rt.sched.stopping:
        raise RuntimeMisuse(
            "curcor.from_thread() needs a running runtime, and none is running "
            "(it has stopped, or curcor.run() was never called)"
        )
    done = threading.Event()
    box: list[Any] = [None, None]

    async def call() -> None:
        try:
            result = fn(*args)
            if _awaitable(result):
                result = await result
            box[0] = result
        except BaseException as exc:
            box[1] = exc
        finally:
            done.set()

    task = rt.sched.spawn_outside(
        call(), f"from_thread:{getattr(fn, '__qualname__', 'call')}"
    )
    if task is None:
        raise RuntimeMisuse("curcor.from_thread(): the runtime is stopping")
    import time

    give_up = None if timeout is None else time.monotonic() + timeout
    while not done.wait(0.05):
        if rt.sched.stopping and not done.is_set():
            raise RuntimeMisuse(
                "curcor.from_thread(): the runtime stopped before the call ended"
            )
        if give_up is not None and time.monotonic() >= give_up:
            # Don't leave the call running unseen: cancel it, then report.
            from .runtime import cancel_task

            cancel_task(task)
            raise TimeoutError(f"from_thread() call did not end in {timeout} s")
    if box[1] is not None:
        raise box[1]
    return box[0]
