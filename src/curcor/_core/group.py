"""Structured concurrency: ``TaskGroup`` waits for its children, cancels the
rest when one fails, and raises the failures as an ``ExceptionGroup``.
"""

from __future__ import annotations

import threading

from .cancel import CancelScope, _propagate, effective, root_scope_for
from .errors import Cancelled, RuntimeMisuse
from .task import Task
from .traps import park, park_unabortable, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


class _Status:
    """What ``TaskGroup.start`` hands its child as ``task_status``."""

    __slots__ = (
        "_group",
        "_root",
        "_task",
        "abandoned",
        "failure",
        "started_flag",
        "value",
    )

    def __init__(self, group: TaskGroup) -> None:
        self._group = group
        self._task: Task | None = None
        self._root: Any = None  # the child's root scope, moved on started()
        self.started_flag = False
        self.value: Any = None
        self.failure: BaseException | None = None
        # The starter stopped waiting (it was cancelled): a failure before
        # started() is then the group's to report, not start()'s.
        self.abandoned = False

    def started(self, value: Any = None) -> None:
        """Report readiness (with a value, e.g. the port bound) to ``start``.

        Raises:
            RuntimeMisuse: called twice.
        """
        if self.started_flag:
            raise RuntimeMisuse("task_status.started() was already called")
        self.value = value
        self.started_flag = True
        self._group._adopt(self)
        self._group._status_changed(self)


class _Ignored:
    """The default ``task_status`` for a function not run by ``start``."""

    def started(self, value: Any = None) -> None:
        """Does nothing: the function was not started by ``TaskGroup.start``."""


TASK_STATUS_IGNORED = _Ignored()


class TaskGroup:
    """``async with curcor.TaskGroup() as tg: tg.go(worker(i))``.

    On exit it waits for every child. When a child (or the body) fails, the
    group cancels everything else inside it; the failures are raised as an
    ``ExceptionGroup``. Cancelling an enclosing scope cancels the children.
    """

    def __init__(self) -> None:
        # Lock rule: _count, _errors, _waiter and _starting are guarded by
        # _lock; tasks are woken after it is released.
        self._lock = threading.Lock()
        self._scope = CancelScope()
        self._count = 0
        self._errors: list[BaseException] = []
        self._waiter: tuple[Task, int] | None = None
        self._starting: dict[int, _Status] = {}
        self._start_waiters: dict[int, tuple[Task, int, _Status]] = {}
        self._entered = False
        self._closed = False

    @property
    def cancel_scope(self) -> CancelScope:
        """The group's scope: ``tg.cancel_scope.cancel()`` cancels the body
        and every child (a server group is stopped this way)."""
        return self._scope

    async def __aenter__(self) -> TaskGroup:
        if self._entered:
            raise RuntimeMisuse("a TaskGroup can be entered only once")
        self._entered = True
        self._scope.__enter__()
        return self

    def go(self, coro: Any, name: str | None = None) -> Task:
        """Start ``coro`` as a child of the group and return its task.

        Raises:
            RuntimeMisuse: the group has already finished.
        """
        return self._spawn(coro, name, self._scope)

    def _spawn(self, coro: Any, name: str | None, parent_scope: Any) -> Task:
        """A child of the group whose root scope hangs below ``parent_scope``."""
        from .runtime import _check_coroutine

        if self._closed or not self._entered:
            if hasattr(coro, "close"):
                coro.close()
            raise RuntimeMisuse(
                "TaskGroup.go() on a group that is not open; call it inside "
                "`async with curcor.TaskGroup() as tg:`"
            )
        coro = _check_coroutine(coro, "TaskGroup.go()")
        w, _parent = worker_and_task("TaskGroup.go()")
        sched = w.sched
        with self._lock:
            self._count += 1

        def prepare(task: Task) -> None:
            task._group = self
            with sched.cancel_lock:
                task._scope = root_scope_for(sched, task, parent_scope)
                task._cancel_pending = effective(task)

        return w.spawn(coro, name, prepare)

    async def start(self, fn: Any, *args: Any, name: str | None = None) -> Any:
        """Start ``fn(*args, task_status=...)`` and wait until it calls
        ``task_status.started(value)``; return that value.

        Raises:
            The child's exception if it failed before reporting ready;
            RuntimeError if it returned without reporting.
        """
        _w, me = worker_and_task("TaskGroup.start()")
        if not callable(fn):
            raise TypeError(
                f"TaskGroup.start() takes an async function and its arguments, "
                f"tg.start(serve, port), not {fn!r}"
            )
        status = _Status(self)
        coro = fn(*args, task_status=status)
        if not hasattr(coro, "send"):
            if hasattr(coro, "close"):
                coro.close()
            what = getattr(fn, "__qualname__", repr(fn))
            raise TypeError(
                f"TaskGroup.start() needs an async function; {what} returned "
                f"{type(coro).__name__}: define it with `async def`"
            )
        with self._lock:
            self._starting[id(coro)] = status
        # Until it reports ready, the child lives under the starter's scope:
        # cancelling the starter cancels it (trio#1431). started() moves it.
        task = self._spawn(coro, name, me._scope)
        status._task = task
        status._root = task._scope
        self._lock.acquire()
        if status.started_flag or status.failure is not None:
            self._lock.release()
            if status.failure is not None:
                raise status.failure
            return status.value
        self._start_waiters[id(status)] = (me, me._wait_seq, status)
        outcome = await park(me, self, self._lock)
        if isinstance(outcome, BaseException):
            raise outcome
        return status.value

    def _adopt(self, status: _Status) -> None:
        """A started child moves from its starter's scope to the group's."""
        root = status._root
        if root is None:
            return
        from .runtime import running_scheduler

        sched = running_scheduler()
        assert sched is not None
        with sched.cancel_lock:
            root._detach()
            root._attach(self._scope)
            _propagate(sched, root)

    def _status_changed(self, status: _Status, exc: Any = None) -> None:
        """The child reported ready, or ended first: wake its starter."""
        with self._lock:
            if exc is not None:
                status.failure = exc
            entry = self._start_waiters.pop(id(status), None)
            if entry is not None and entry[0]._wait_seq == entry[1]:
                entry[0]._wait_seq += 1
                entry[0]._waiting_on = None
            else:
                entry = None
        if entry is not None:
            from .runtime import running_scheduler

            sched = running_scheduler()
            assert sched is not None
            sched.ready(entry[0], exc)

    def _abort(self, task: Task) -> bool:
        """Cancellation of a waiting ``start``; the exit wait cannot abort."""
        with self._lock:
            if task._waiting_on is not self:
                return False
            waiters = self._start_waiters
            for key, entry in list(waiters.items()):
                if entry[0] is task:
                    del waiters[key]
                    task._wait_seq += 1
                    task._waiting_on = None
                    entry[2].abandoned = True
                    return True
            return False

    def _child_done(self, task: Task, exc: BaseException | None) -> None:
        """A child ended (called on the worker that ran it)."""
        from .runtime import running_scheduler

        sched = running_scheduler()
        assert sched is not None
        with sched.cancel_lock:
            root = task._scope
            if root is not None:
                root._detach()
        with self._lock:
            status = self._starting.pop(id(task.coro), None)
        if status is not None and not status.started_flag:
            failure = exc or RuntimeError(
                f"task {task.name!r} returned without calling task_status.started()"
            )
            self._status_changed(status, failure)
            with self._lock:
                abandoned = status.abandoned
            if not abandoned:
                exc = None  # start() raises it
            # (else the starter was cancelled and left: the group reports
            # the error, as trio's start() would have, so it is never lost)
        failed = exc is not None and not isinstance(exc, Cancelled)
        with self._lock:
            self._count -= 1
            if failed:
                assert exc is not None
                self._errors.append(exc)
            waiter = self._waiter if self._count == 0 else None
            if waiter is not None:
                self._waiter = None
                if waiter[0]._wait_seq == waiter[1]:
                    waiter[0]._wait_seq += 1
                    waiter[0]._waiting_on = None
                else:
                    waiter = None
        if failed:
            self._scope.cancel()
        if waiter is not None:
            sched.ready(waiter[0])

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        _w, me = worker_and_task("TaskGroup exit")
        if exc is not None and not isinstance(exc, Cancelled):
            with self._lock:
                self._errors.append(exc)
            self._scope.cancel()

        # Wait for every child; this wait is not cancellable (the children
        # are cancelled instead, through the group's scope).
        self._lock.acquire()
        if self._count:
            self._waiter = (me, me._wait_seq)
            await park_unabortable(me, _Unabortable(self), self._lock)
        else:
            self._lock.release()
        self._closed = True

        # Leave the scope; report the failures.
        errors = list(self._errors)
        swallowed = self._scope.__exit__(exc_type, exc, tb)
        if errors:
            plain = [e for e in errors if isinstance(e, Exception)]
            # ``from None``: the body's own error, if any, is in the group;
            # shown again as the context it would be printed twice.
            if len(plain) == len(errors):
                raise ExceptionGroup("unhandled errors in a TaskGroup", plain) from None
            raise BaseExceptionGroup(
                "unhandled errors in a TaskGroup", errors
            ) from None
        # Exit is a checkpoint: a group cancelled from outside whose body
        # ended normally still raises Cancelled, for the scope that cancelled.
        if exc is None and me._cancel_pending:
            raise Cancelled()
        return bool(swallowed) if isinstance(exc, Cancelled) else False


class _Unabortable:
    """The ``_waiting_on`` of a TaskGroup's exit wait: not cancellable."""

    __slots__ = ("group",)

    def __init__(self, group: TaskGroup) -> None:
        self.group = group

    def _abort(self, task: Task) -> bool:
        return False
