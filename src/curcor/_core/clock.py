"""Time for tasks: ``sleep``, ``after``, ``Ticker`` and ``Timer``.

All of them run on the runtime's clock (``curcor.now()``), which a test's
fake clock drives.
"""

from __future__ import annotations

import math
import threading
import types
import weakref
from functools import partial

from .chan import Channel
from .errors import Cancelled, RuntimeMisuse, WouldBlock, check_seconds
from .scheduler import YIELD, _tls
from .traps import YIELD_NOW, park, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any


def sleep(seconds: float) -> Any:
    """Suspend the task for ``seconds`` (0 just lets other tasks run).

    ``await curcor.sleep(0.5)``.

    Raises:
        Cancelled: an enclosing scope was cancelled.
    """
    if (type(seconds) is int or type(seconds) is float) and seconds <= 0:
        # sleep(0) runs no Python frame: a shared awaitable (see YieldNow).
        # The cancellation check happens here, in the task that calls it.
        try:
            task = _tls.worker.current
        except AttributeError:
            task = None
        if task is None:
            worker_and_task("curcor.sleep()")  # raises the misuse error
        elif task._cancel_pending:
            raise Cancelled()
        return YIELD_NOW
    return _sleep(check_seconds(seconds, "curcor.sleep()"))


@types.coroutine
def _sleep(seconds: float) -> Any:
    # The task is looked up when the sleep is awaited, not when it was made:
    # a coroutine may be created in one task and awaited in another.
    w, task = worker_and_task("curcor.sleep()")
    if task._cancel_pending:
        raise Cancelled()
    if seconds <= 0:
        yield YIELD
        return None
    if seconds == math.inf:
        from .chan import _block_forever

        yield from _block_forever(task).__await__()
        return None
    timers = w.sched.timers
    timers.lock.acquire()
    entry = timers.add_sleep(w.sched.clock.now() + seconds, task)
    try:
        yield from park(task, timers, timers.lock)
    finally:
        entry[3] = None  # a stale entry must not hold the task (see select)
    return None


# A task started with go(curcor.sleep(1)) is named "sleep-N", as one started
# with go(curcor.sleep(0)) is (traps.await_once).
_sleep.__qualname__ = _sleep.__name__ = "sleep"


def after(seconds: float) -> Channel:
    """A channel that receives ``curcor.now()`` once, ``seconds`` from now.

    Go's ``time.After``: use it as a select case, ``curcor.recv(after(1))``.
    """
    seconds = check_seconds(seconds, "curcor.after()")
    w, _ = worker_and_task("curcor.after()")
    ch = Channel(1)
    _send_time_at(w.sched, seconds, ch)
    return ch


def _send_time_at(sched: Any, seconds: float, ch: Channel) -> Any:
    """Arm a timer that sends ``now()`` on ``ch`` in ``seconds``; its handle.

    The timer holds the channel weakly, as Go 1.23's timers do: a channel
    that lost its select (or a Timer dropped with it) is freed at once, not
    when the timer is due, and its entry is abandoned (purged with the other
    stale ones). While anyone holds the channel, it fires.
    """
    clock = sched.clock
    handle: Any = None
    ref = weakref.ref(ch, lambda _ref: handle and handle.abandon())
    handle = sched.timers.call_at(
        clock.now() + max(0.0, seconds), partial(_send_time, ref, clock)
    )
    return handle


def _send_time(ref: Any, clock: Any) -> None:
    ch = ref()
    if ch is not None:
        ch.try_send(clock.now())


class Timer:
    """Go's ``time.Timer``: ``t.c`` receives the time once after ``seconds``.

    ``stop()`` prevents it from firing; ``reset(seconds)`` re-arms it.
    """

    def __init__(self, seconds: float) -> None:
        w, _ = worker_and_task("curcor.Timer()")
        self._sched = w.sched
        self.c = Channel(1)
        self._handle: Any = None
        self._arm(check_seconds(seconds, "curcor.Timer()"))

    def stop(self) -> bool:
        """Stop the timer; True if it had not fired, or fired unreceived.

        As in Go 1.23, no stale time can be received from ``c`` after
        ``stop`` or ``reset`` returns: a tick nobody took is withdrawn.
        """
        handle, self._handle = self._handle, None
        pending = bool(handle is not None and handle.cancel())
        return _drain(self.c) or pending

    def reset(self, seconds: float) -> bool:
        """Re-arm to fire ``seconds`` from now; True if it was still pending
        (or had fired unreceived)."""
        seconds = check_seconds(seconds, "Timer.reset()")
        was = self.stop()
        self._arm(seconds)
        return was

    def _arm(self, seconds: float) -> None:
        # Held weakly through its channel (_send_time_at): a Timer dropped
        # with its channel is freed; holding t or t.c keeps it.
        self._handle = _send_time_at(self._sched, seconds, self.c)


def _drain(ch: Channel) -> bool:
    """Withdraw a value waiting in a timer's one-slot channel; True if any."""
    try:
        ch.try_recv()
    except WouldBlock:
        return False
    return True


class Ticker:
    """Go's ``time.Ticker``: ``t.c`` receives the time every ``period`` seconds.

    Ticks that nobody receives are dropped (the channel holds one), so a slow
    reader never builds a backlog. ``async for when in ticker`` reads ticks
    and ends when ``stop()`` is called, from any task; ``t.c`` itself stays
    open after ``stop()``, as in Go.
    """

    def __init__(self, period: float) -> None:
        period = _period(period, "curcor.Ticker()")
        w, _ = worker_and_task("curcor.Ticker()")
        self._sched = w.sched
        # The channel holds the ticker and the timer entry holds the ticker
        # weakly (Go 1.23): a reader of t.c alone keeps it ticking, and a
        # ticker dropped with its channel is collected and its entry
        # abandoned.
        self.c = _TickerChannel(1)
        self.c._ticker = self
        # The entry to abandon when the ticker is collected: the callback
        # gets only the dead weakref, so the live handle sits in a box.
        box: list[Any] = [None]
        self._box = box
        self._ref = weakref.ref(self, lambda _ref: box[0] and box[0].abandon())
        # Lock rule: period, _next, _stopped, _handle and _stop_ch are
        # guarded by _lock (stop() and a firing tick may run on two workers).
        self._lock = threading.Lock()
        self._stopped = True
        self._handle: Any = None
        self._stop_ch = Channel(0)
        self._start(period)

    def _start(self, period: float) -> None:
        with self._lock:
            self.period = period
            self._stopped = False
            if self._stop_ch.closed:
                self._stop_ch = Channel(0)
            self._next = self._sched.clock.now() + period
            self._handle = self._box[0] = self._sched.timers.call_at(
                self._next, partial(_tick_weakly, self._ref)
            )

    def _tick(self) -> None:
        now = self._sched.clock.now()
        with self._lock:
            if self._stopped:
                return
            # Next tick on the original grid, skipping ticks that were missed.
            missed = math.ceil((now - self._next) / self.period)
            self._next += self.period * max(1, missed)
            if self._next <= now:
                self._next += self.period
            self._handle = self._box[0] = self._sched.timers.call_at(
                self._next, partial(_tick_weakly, self._ref)
            )
        self.c.try_send(now)

    def stop(self) -> None:
        """Stop ticking and end ``async for`` loops over the ticker; a tick
        nobody received is withdrawn (Go 1.23)."""
        stop_ch = self._halt()
        if not stop_ch.closed:
            stop_ch._close()

    def _halt(self) -> Channel:
        """Stop the timer and withdraw an unreceived tick; readers stay."""
        with self._lock:
            self._stopped = True
            handle, self._handle = self._handle, None
            stop_ch = self._stop_ch
        if handle is not None:
            handle.cancel()
        _drain(self.c)
        return stop_ch

    def reset(self, period: float) -> None:
        """Tick every ``period`` seconds from now on (``async for`` readers
        keep reading)."""
        period = _period(period, "Ticker.reset()")
        self._halt()
        self._start(period)

    def __aiter__(self) -> Ticker:
        return self

    async def __anext__(self) -> float:
        from .chan import recv, select

        stop_ch = self._stop_ch
        if stop_ch.closed:
            raise StopAsyncIteration
        index, (value, _ok) = await select(recv(self.c), recv(stop_ch))
        if index == 1:
            raise StopAsyncIteration
        return value


class _TickerChannel(Channel):
    """A Ticker's channel: it keeps its ticker alive (see Ticker)."""

    __slots__ = ("_ticker",)
    _ticker: Ticker


def _tick_weakly(ref: Any) -> None:
    ticker = ref()
    if ticker is not None:
        ticker._tick()


# Shortest Ticker period: Go's Duration counts whole nanoseconds, and a
# shorter period would make the missed-tick arithmetic overflow.
MIN_PERIOD = 1e-9


def _period(period: float, what: str) -> float:
    period = check_seconds(period, what)
    if not period >= MIN_PERIOD:
        raise ValueError(
            f"{what}: a Ticker period must be at least 1e-9 seconds (1 ns), "
            f"not {period!r}"
        )
    return period


__all__ = ["RuntimeMisuse", "Ticker", "Timer", "after", "sleep"]
