"""Level-triggered cancellation: cancel scopes, ``timeout`` and ``move_on_after``.

Scopes form a tree. A scope entered inside a task hangs below the task's
current scope; a ``TaskGroup`` child's root scope hangs below the group's
scope, so cancelling an outer scope reaches every task inside it. A task is
*cancelled* while any scope on its path to the root is cancelled, stopping
at the first shielded scope. While it is cancelled, every await raises
``Cancelled``, until the cancelled scope exits (the exception reaching the
scope that was cancelled is swallowed there).

Lock rule: the tree (``_parent``, ``_children``), ``_cancel_called``,
``_shield`` and every task's ``_scope`` and ``_cancel_pending`` are guarded by
the runtime's ``cancel_lock``. A task reads its own ``_cancel_pending`` without
the lock at each checkpoint; the wait protocol (scheduler.py, step 1) re-reads
it after publishing ``_waiting_on``, so a cancellation is never missed.
"""

from __future__ import annotations

import math

from .errors import Cancelled, RuntimeMisuse, check_seconds
from .scheduler import Scheduler, current_worker
from .task import DONE, FREE, Task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


def _current_task(what: str) -> tuple[Task, Scheduler]:
    w = current_worker()
    task = w.current if w is not None else None
    if task is None or w is None:
        raise RuntimeMisuse(
            f"{what} needs a running curcor task; enter it inside a coroutine "
            "started by curcor.run(main()) or curcor.go()"
        )
    return task, w.sched


class CancelScope:
    """A ``with`` block that can be cancelled, by call or by deadline.

    ``with curcor.CancelScope(deadline=curcor.now() + 5) as scope: ...``;
    ``scope.cancel()`` from anywhere in the runtime cancels every await
    inside the block, in this task and in task groups opened inside it.

    Attributes:
        cancelled_caught: True once the block ended because of this scope's
            own cancellation.
    """

    __slots__ = (
        "_cancel_called",
        "_children",
        "_deadline",
        "_exited",
        "_handle",
        "_parent",
        "_raise_timeout",
        "_relative",
        "_root",
        "_sched",
        "_shield",
        "_task",
        "_timed_out",
        "_unwound",
        "cancelled_caught",
    )

    def __init__(self, *, deadline: float = math.inf, shield: bool = False) -> None:
        self._deadline = _check_deadline(deadline)
        self._shield = bool(shield)
        self._cancel_called = False
        self._children: set[CancelScope] | None = None
        self._parent: CancelScope | None = None
        self._task: Task | None = None
        self._sched: Scheduler | None = None
        self._handle: Any = None
        self._root = False
        self._raise_timeout: float | None = None
        self._relative: float | None = None  # seconds after entry (timeout())
        self._timed_out = False
        self._unwound = False  # closed early by a misnested exit (_unwind)
        self._exited = False  # its block has ended (deadline changes ignored)
        self.cancelled_caught = False

    # -- entering and leaving -------------------------------------------------

    def __enter__(self) -> CancelScope:
        task, sched = _current_task("a cancel scope")
        if self._task is not None:
            raise RuntimeMisuse(
                "this CancelScope was already entered; create a new one per "
                "`with` block"
            )
        if self._relative is not None:
            # timeout()/move_on_after(): the clock starts at entry.
            self._deadline = sched.clock.now() + self._relative
        with sched.cancel_lock:
            self._sched = sched
            self._task = task
            self._attach(task._scope)
            task._scope = self
            recompute(task)
        self._arm()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        task, sched = self._task, self._sched
        if task is None or sched is None:
            raise RuntimeMisuse("CancelScope exited without being entered")
        w = current_worker()
        if w is None or w.current is not task:
            raise RuntimeMisuse(
                "a cancel scope must be exited in the task that entered it; "
                "this one was entered by task "
                f"{task.name!r}: keep each `with` block inside one task"
            )
        if self._unwound:
            return False  # already closed by an outer scope's misnested exit
        self._exited = True
        if task._scope is not self:
            self._unwind(task, sched)
            raise RuntimeMisuse(
                "cancel scopes must be exited in the reverse order of entry, in "
                "the task that entered them (a scope left open across a yield "
                "of an async generator does this); the scopes entered inside "
                "this one were closed with it"
            )
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with sched.cancel_lock:
            task._scope = self._parent
            self._detach()
            recompute(task)
            outer_cancelled = task._cancel_pending
        # Cancelled belongs to the outermost cancelled scope: while an
        # enclosing scope is cancelled too, let it travel on to that one.
        if (
            isinstance(exc, Cancelled)
            and self._cancel_called
            and (self._shield or not outer_cancelled)
        ):
            self.cancelled_caught = True
            if self._raise_timeout is not None and self._timed_out:
                raise TimeoutError(
                    f"timed out after {max(0.0, self._raise_timeout):g} s "
                    "(curcor.timeout)"
                ) from None
            return True
        return False

    def _unwind(self, task: Task, sched: Scheduler) -> None:
        """Misnested exit: close this scope and every scope still open inside
        it, so that none of them can cancel the task later (trio repairs its
        scope stack the same way before it reports the error)."""
        with sched.cancel_lock:
            chain = []
            scope = task._scope
            while scope is not None and scope is not self:
                chain.append(scope)
                scope = scope._parent
            if scope is None:  # not in this task's chain any more
                chain = []
            for inner in [*chain, self]:
                inner._unwound = inner._exited = True
                inner._detach()
                if inner._handle is not None:
                    inner._handle.cancel()
                    inner._handle = None
            if scope is self:
                task._scope = self._parent
            recompute(task)

    def _attach(self, parent: CancelScope | None) -> None:
        """Called with the cancel lock held: hang below ``parent``."""
        self._parent = parent
        if parent is not None:
            if parent._children is None:
                parent._children = set()
            parent._children.add(self)

    def _detach(self) -> None:
        """Called with the cancel lock held: leave the tree."""
        parent = self._parent
        if parent is not None and parent._children is not None:
            parent._children.discard(self)

    # -- deadline -------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The time on ``curcor.now()``'s clock at which the scope cancels.

        For ``timeout(s)`` and ``move_on_after(s)`` the clock starts when the
        block is entered; before that this reads ``now() + s``.
        """
        if self._relative is not None and self._task is None:
            from .runtime import now

            return now() + self._relative
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        value = _check_deadline(value)
        if self._exited:  # as trio: nothing left to cancel
            self._deadline = value
            return
        if self._raise_timeout is not None and self._task is not None:
            # timeout(s) moved: its message gives the block's real limit.
            self._raise_timeout += value - self._deadline
        self._relative = None
        self._deadline = value
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._task is not None:
            self._arm()

    def _arm(self) -> None:
        sched = self._sched
        if sched is None or self._deadline == math.inf or self._cancel_called:
            return
        if self._deadline <= sched.clock.now():
            self._expire()
        else:
            self._handle = sched.timers.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._timed_out = True
        self.cancel()

    # -- cancelling -----------------------------------------------------------

    @property
    def shield(self) -> bool:
        """While True, cancellation from outside does not reach inside."""
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        sched = self._sched
        if sched is None:
            self._shield = bool(value)
            return
        with sched.cancel_lock:
            self._shield = bool(value)
            _propagate(sched, self)

    @property
    def cancel_called(self) -> bool:
        """True once ``cancel()`` was called or the deadline passed."""
        return self._cancel_called

    def cancel(self) -> None:
        """Cancel the scope: every await inside raises ``Cancelled``.

        Safe to call more than once and from any task of the runtime; before
        the scope is entered it marks the scope to cancel on entry.
        """
        sched = self._sched
        if sched is None:
            self._cancel_called = True
            return
        with sched.cancel_lock:
            if self._cancel_called:
                return
            self._cancel_called = True
            _propagate(sched, self)


def _check_deadline(value: float) -> float:
    return check_seconds(value, "a CancelScope deadline")


def timeout(seconds: float) -> CancelScope:
    """A scope that cancels its block after ``seconds`` and raises TimeoutError.

    ``with curcor.timeout(2): await ch.recv()``.

    Raises:
        TimeoutError: at the end of the block, when the deadline cancelled it.
    """
    scope = CancelScope()
    scope._relative = _seconds_ok(seconds, "curcor.timeout()")
    scope._raise_timeout = float(seconds)
    return scope


def move_on_after(seconds: float) -> CancelScope:
    """A scope that cancels its block after ``seconds`` and carries on quietly.

    Check ``scope.cancelled_caught`` afterwards to know whether it timed out.
    The clock starts when the block is entered.
    """
    scope = CancelScope()
    scope._relative = _seconds_ok(seconds, "curcor.move_on_after()")
    return scope


def _seconds_ok(seconds: float, what: str) -> float:
    """Validate a relative timeout; negative means "already expired"."""
    return max(0.0, check_seconds(seconds, what))


# -- the tree walk ------------------------------------------------------------


def effective(task: Task) -> bool:
    """Called with the cancel lock held: is ``task`` cancelled right now?"""
    scope = task._scope
    while scope is not None:
        if scope._cancel_called:
            return True
        if scope._shield:
            return False
        scope = scope._parent
    return False


def recompute(task: Task) -> None:
    """Called with the cancel lock held: refresh ``task._cancel_pending``."""
    pending = effective(task)
    if pending and not task._cancel_pending:
        task._cancel_pending = True
        wake_cancelled(task)
    else:
        task._cancel_pending = pending


def _propagate(sched: Scheduler, scope: CancelScope) -> None:
    """Called with the cancel lock held: refresh every task below ``scope``."""
    # A dict, not a list: a group of N children is N scopes, and a linear
    # "not in" made cancelling it N**2 (64k children: 22 s, now 0.3 s).
    tasks: dict[Task, None] = {}
    stack = [scope]
    while stack:
        s = stack.pop()
        if s._task is not None:
            tasks[s._task] = None
        if s._children:
            stack.extend(s._children)
    for t in tasks:
        if t._state != DONE and t._state != FREE:
            recompute(t)


def wake_cancelled(task: Task) -> None:
    """End ``task``'s current wait, if any, and resume it with Cancelled."""
    waiting_on = task._waiting_on
    if waiting_on is not None and waiting_on._abort(task):
        from .runtime import running_scheduler

        sched = running_scheduler()
        if sched is not None:  # None: the runtime has stopped; nothing to wake
            sched.ready(task, exc=Cancelled())


def root_scope_for(
    sched: Scheduler, task: Task, parent: CancelScope | None
) -> CancelScope:
    """Called with the cancel lock held: the scope a task's chain starts at."""
    root = CancelScope()
    root._root = True
    root._task = task
    root._sched = sched
    root._attach(parent)
    return root


def cancel_task(sched: Scheduler, task: Task) -> bool:
    """Cancel ``task`` as a whole (``Task.cancel``); False if it had ended."""
    with sched.cancel_lock:
        if task._state == DONE or task._state == FREE:
            return False
        # Find the bottom of the task's own chain, adding a root if it has none.
        scope = task._scope
        bottom = None
        while scope is not None and scope._task is task:
            bottom = scope
            if scope._root:
                break
            scope = scope._parent
        if bottom is None or not bottom._root:
            root = root_scope_for(sched, task, None)
            if bottom is None:
                task._scope = root
            else:
                bottom._parent = root
                root._children = {bottom}
            bottom = root
        if not bottom._cancel_called:
            bottom._cancel_called = True
            _propagate(sched, bottom)
        return True
