"""The task record: a coroutine plus the little state the scheduler needs.

Records come from a per-worker free list and go back to it when a task ends
and nobody else holds a reference to it (see ``Worker._finish``). The public
``curcor.Task`` is this class: the handle ``curcor.go`` returns *is* the
record, so spawning allocates nothing besides the coroutine (and, where
context variables are in use, its context copy).
"""

from __future__ import annotations

import sys
import types

from .errors import Cancelled, RuntimeMisuse

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

# ``runtime.py`` fills these at import: join_task(task) and
# abort_join(task, waiter). (A list rather than two globals set from outside:
# a compiled build reads it the same way.)
HOOKS: list[Any] = [None, None]

# Task states. A record moves FREE -> RUNNABLE <-> RUNNING <-> BLOCKED -> DONE.
# A record back in a worker's free list (nobody held it) keeps the state it
# ended in, with ``coro`` None, which is what marks it free; the next spawn
# makes it RUNNABLE. Only the worker that runs the task, or a waker that won
# the right to wake it (see "The wait protocol" in scheduler.py), changes the
# state.
FREE = 0
RUNNABLE = 1
RUNNING = 2
BLOCKED = 3
DONE = 4

STATE_NAMES = {
    FREE: "free",
    RUNNABLE: "runnable",
    RUNNING: "running",
    BLOCKED: "blocked",
    DONE: "done",
}


class Task:
    """A task started by ``curcor.go`` or a ``TaskGroup``: Go's goroutine.

    Attributes:
        name: the name given at ``go(coro, name=...)``, else the coroutine's
            qualified name and a number.

    Use ``cancel()`` to request cancellation, ``done()`` to ask whether it
    ended, and ``await task.join()`` for its value.
    """

    # Lock rule: the fields below the line are written by the worker running
    # the task, or by the one waker that removed the task from a wait list
    # under that list's lock (it then owns the task until it is queued).
    # ``_cancel_pending`` and ``_scope`` are written under the runtime's
    # cancel lock. ``_joiners`` is guarded by the runtime's stripe lock for
    # this task (``Scheduler.stripe``).
    __slots__ = (
        "_cancel_pending",
        "_ctx",
        "_exc",
        "_group",
        "_id",
        "_joiners",
        "_name",
        "_scope",
        "_state",
        "_value",
        "_wait_seq",
        "_waiting_on",
        "coro",
    )

    def __init__(self) -> None:
        self.coro: Any = None
        self._ctx: Any = None
        self._scope: Any = None  # innermost CancelScope, None if none entered
        # Value to resume with; once DONE the result, or for a failed task
        # the traceback its error ended with (take_result re-raises with it).
        self._value: Any = None
        self._exc: BaseException | None = None  # to throw in; the error once DONE
        self._state = FREE
        self._waiting_on: Any = None  # the wait object that may wake it
        self._wait_seq = 0  # bumped by whoever ends a wait; stale entries skip
        self._cancel_pending = False
        self._joiners: list[tuple[Task, int]] | None = None
        self._name: str | None = None
        self._id = 0
        self._group: Any = None

    # -- public API --------------------------------------------------------

    @property
    def name(self) -> str:
        """The task's name (given, or the coroutine's qualified name and id)."""
        if self._name is not None:
            return self._name
        qual = getattr(self.coro, "__qualname__", None) or type(self.coro).__name__
        return f"{qual}-{self._id}"

    @property
    def id(self) -> int:
        """A number unique to this task within its runtime."""
        return self._id

    def done(self) -> bool:
        """True once the task has finished: returned, raised or cancelled."""
        return self._state == DONE or self._state == FREE

    def cancelled(self) -> bool:
        """True if the task ended by cancellation."""
        return self.done() and isinstance(self._exc, Cancelled)

    def cancel(self) -> bool:
        """Request cancellation; every await in the task then raises Cancelled.

        Returns:
            True when the request arrived before the task finished.
        """
        from .runtime import cancel_task

        return cancel_task(self)

    def join(self) -> Any:
        """Wait for the task to finish and return its value:
        ``await task.join()``.

        (In a pure-Python install ``runtime.py`` puts ``join_task`` itself
        in this method's place, one call fewer; a compiled build keeps this
        body, which returns the same coroutine.)

        Raises:
            The task's exception, or ``Cancelled`` if it was cancelled.
        """
        return HOOKS[0](self)

    def _abort(self, waiter: Task) -> bool:
        """End ``waiter``'s join of this task (cancellation; see
        "The wait protocol" in scheduler.py)."""
        return bool(HOOKS[1](self, waiter))

    def result(self) -> Any:
        """The value of a finished task (raises its error, like ``join``).

        Raises:
            RuntimeMisuse: the task has not finished yet; ``await join()``.
        """
        if not self.done():
            raise RuntimeMisuse(
                f"task {self.name!r} has not finished; "
                "use `await task.join()` to wait for it"
            )
        from .runtime import take_result

        return take_result(self)

    def __await__(self) -> Any:
        raise TypeError(
            f"a curcor Task is not awaitable; write `await task.join()` to wait "
            f"for {self.name!r} and get its value"
        )

    def __repr__(self) -> str:
        state = STATE_NAMES.get(self._state, "?")
        return f"<curcor.Task {self.name!r} {state}>"


# The coroutine types a task can run. Cython and other compiled coroutines
# provide send/throw/close too, and are accepted by duck typing.
COROUTINE_TYPES = (types.CoroutineType, types.GeneratorType)


def stack_frames(task: Task) -> list[tuple[str, int, str]]:
    """(file, line, function) of each frame ``task`` is suspended in,
    outermost call first. Any thread: a task that ends meanwhile just
    yields fewer frames (its ``coro`` may become None)."""
    frames: list[tuple[str, int, str]] = []
    obj: Any = task.coro
    depth = 0
    while obj is not None and depth < 64:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            frames.append((code.co_filename, frame.f_lineno or 0, code.co_name))
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
        depth += 1
    return frames


def describe_stack(task: Task) -> list[str]:
    """Lines describing where ``task`` is suspended, outermost call first."""
    return [
        f'  File "{name}", line {line}, in {func}'
        for name, line, func in stack_frames(task)
    ]


def refcount_baseline(local: bool = False) -> int:
    """How many references ``Worker._finish`` sees on an unshared record, or
    with ``local`` the worker loop, which holds it in a local variable only.

    Measured once at import rather than assumed, since the count differs
    between interpreter versions and builds.
    """

    def probe(t: Task) -> int:
        return sys.getrefcount(t)

    def outer() -> int:
        t = Task()
        return probe(t)

    def in_place() -> int:
        t = Task()
        return sys.getrefcount(t)

    return in_place() if local else outer()
