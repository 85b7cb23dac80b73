"""Go-style contexts: cancellation and values carried across API boundaries.

A ``Context`` is never applied implicitly: ``with ctx.scope():`` turns it into
a cancel scope for the block. Cancelling a context cancels its descendants.
"""

from __future__ import annotations

import math
import threading

from .cancel import CancelScope
from .chan import Channel
from .errors import RuntimeMisuse, check_seconds

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


class ContextCancelled(Exception):
    """``Context.err()`` after ``cancel()``: Go's ``context.Canceled``."""


class DeadlineExceeded(TimeoutError):
    """``Context.err()`` after the deadline passed: Go's ``DeadlineExceeded``."""


class Context:
    """An immutable bag of cancellation, deadline and values (Go's context).

    Make one with ``curcor.background()``, then derive children:
    ``ctx.with_cancel()``, ``ctx.with_timeout(s)``, ``ctx.with_value(k, v)``.
    A value context takes its cancellation from its nearest cancellable
    ancestor; a cancellable one registers with that ancestor only until it
    is cancelled, so contexts made per request do not pile up under a
    long-lived parent.
    """

    def __init__(
        self,
        parent: Context | None = None,
        *,
        deadline: float = math.inf,
        key: Any = None,
        value: Any = None,
        cancellable: bool = False,
    ) -> None:
        # Lock rule: _err, _children, _done and _scopes are guarded by _lock;
        # callbacks (children, scopes, the done channel) run after release.
        self._lock = threading.Lock()
        self._parent = parent
        self._key = key
        self._value = value
        self._has_value = key is not None
        self._cancellable = cancellable
        inherited = parent.deadline() if parent is not None else math.inf
        self._deadline = min(deadline, inherited)
        self._err: Exception | None = None
        self._children: dict[int, Context] = {}
        self._scopes: dict[int, CancelScope] = {}
        self._done: Channel | None = None
        self._timer: Any = None
        # The context whose cancellation this one follows (None: never).
        up = parent._owner if parent is not None else None
        self._owner: Context | None = self if cancellable else up
        self._up = up  # the cancellable ancestor a cancellable one hangs on
        if cancellable and up is not None:
            up._adopt(self)

    # -- deriving -------------------------------------------------------------

    def with_cancel(self) -> Context:
        """A child context with its own ``cancel()``."""
        return Context(self, cancellable=True)

    def with_timeout(self, seconds: float) -> Context:
        """A cancellable child that cancels itself ``seconds`` from now."""
        from .runtime import now

        seconds = check_seconds(seconds, "Context.with_timeout()")
        return self._with_deadline(now() + seconds)

    def with_deadline(self, deadline: float) -> Context:
        """A cancellable child that cancels itself at ``deadline`` (runtime clock)."""
        return self._with_deadline(check_seconds(deadline, "Context.with_deadline()"))

    def _with_deadline(self, deadline: float) -> Context:
        child = Context(self, deadline=deadline, cancellable=True)
        child._arm()
        return child

    def with_value(self, key: Any, value: Any) -> Context:
        """A child that carries ``value`` under ``key`` (read with ``value()``)."""
        if key is None:
            raise ValueError("Context.with_value() needs a key other than None")
        return Context(self, key=key, value=value)

    def _adopt(self, child: Context) -> None:
        with self._lock:
            err = self._err
            if err is None:
                self._children[id(child)] = child
        if err is not None:
            child._cancel(err)

    def _arm(self) -> None:
        from .runtime import now, running_scheduler

        if self._deadline == math.inf:
            return
        sched = running_scheduler()
        if self._deadline <= now():
            self._cancel(DeadlineExceeded("context deadline exceeded"))
            return
        if sched is None:
            raise RuntimeMisuse(
                "Context.with_timeout() needs a running curcor runtime for its "
                "timer; create it inside a task"
            )
        self._timer = sched.timers.call_at(
            self._deadline,
            lambda: self._cancel(DeadlineExceeded("context deadline exceeded")),
        )

    # -- reading --------------------------------------------------------------

    def value(self, key: Any, default: Any = None) -> Any:
        """The value stored under ``key`` here or in an ancestor."""
        ctx: Context | None = self
        while ctx is not None:
            if ctx._has_value and ctx._key == key:
                return ctx._value
            ctx = ctx._parent
        return default

    def deadline(self) -> float:
        """When this context cancels itself (``math.inf`` when never)."""
        return self._deadline

    def err(self) -> Exception | None:
        """None while live; ``ContextCancelled`` or ``DeadlineExceeded`` after."""
        owner = self._owner
        return owner._err if owner is not None else None

    def done(self) -> Channel:
        """A channel that is closed when the context is cancelled (never, for
        a context without a cancellable ancestor)."""
        owner = self._owner if self._owner is not None else self
        with owner._lock:
            if owner._done is None:
                owner._done = Channel(0)
                if owner._err is not None:
                    owner._done._closed = True
            return owner._done

    # -- cancelling -----------------------------------------------------------

    def cancel(self) -> None:
        """Cancel this context and its descendants (idempotent).

        Raises:
            RuntimeMisuse: the context was not made by with_cancel/with_timeout.
        """
        if not self._cancellable:
            raise RuntimeMisuse(
                "this context cannot be cancelled; derive one with "
                "ctx.with_cancel() or ctx.with_timeout(s) and cancel that"
            )
        self._cancel(ContextCancelled("context canceled"))

    def _cancel(self, err: Exception) -> None:
        with self._lock:
            if self._err is not None:
                return
            self._err = err
            children, self._children = self._children, {}
            scopes, self._scopes = self._scopes, {}
            done = self._done
        up = self._up
        if up is not None:
            with up._lock:
                up._children.pop(id(self), None)
        if self._timer is not None:
            self._timer.cancel()
        if done is not None and not done._closed:
            done._close()
        for scope in scopes.values():
            scope.cancel()
        for child in children.values():
            child._cancel(err)

    def scope(self) -> CancelScope:
        """A cancel scope for ``with ctx.scope():`` that this context cancels.

        Its deadline is the context's deadline.
        """
        owner = self._owner
        scope = _ContextScope(owner, deadline=self._deadline)
        if owner is None:
            return scope
        with owner._lock:
            if owner._err is None:
                owner._scopes[id(scope)] = scope
                return scope
        scope.cancel()
        return scope

    def __repr__(self) -> str:
        err = self.err()
        state = "live" if err is None else type(err).__name__
        return f"<curcor.Context {state}>"


class _ContextScope(CancelScope):
    """The scope ``Context.scope()`` returns; it unregisters when it exits."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Context | None, *, deadline: float) -> None:
        super().__init__(deadline=deadline)
        self._ctx = ctx

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        ctx = self._ctx
        if ctx is not None:
            with ctx._lock:
                ctx._scopes.pop(id(self), None)
        return super().__exit__(exc_type, exc, tb)


_BACKGROUND = Context()


def background() -> Context:
    """The root context: never cancelled, no deadline, no values."""
    return _BACKGROUND
