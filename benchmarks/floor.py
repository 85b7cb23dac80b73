"""The floor: the smallest scheduler pure Python allows, for comparison only.

A ``deque`` of ready coroutines and ``coro.send``; nothing else. It is what
the benchmark workloads would cost if a runtime did no work of its own, so
"x floor" in the tables says how far a real runtime is from the practical
limit of pure Python.

What it deliberately lacks: cancellation, exceptions crossing tasks (a task
that raises ends the run), timeouts, I/O, threads (one thread runs
everything), fairness guarantees beyond FIFO order, misuse checks. Its only
primitives are the ones the workloads need: spawn, ``sleep`` (a heap of
deadlines for the timers workload, ``sleep(0)`` = yield), a wait counter,
a Go-like channel with a receive-only ``select``, and a FIFO mutex.

A task suspends by yielding one of three traps to :func:`run`:
``_YIELD`` (run me again later), ``_PARK`` (some other task will wake me,
having recorded who I am from ``_current``) or a float (a deadline on
``time.monotonic``).

Garbage collection: ``run(..., gc_mode="governed")`` applies what curcor's
default ``gc=governed`` does at boot (``gc.freeze()`` and a gen-0 threshold
of at least 50,000; docs/gc.md), inside the timed window as curcor does, and
undoes it on return; ``gc_mode="default"`` leaves CPython's settings alone.
"""

from __future__ import annotations

import gc
import heapq
import random
import time
from collections import deque
from collections.abc import Coroutine, Generator
from types import coroutine
from typing import Any

# curcor's runtime.GOVERNED_GEN0 (docs/gc.md); copied, not imported, so the
# floor never loads curcor.
GOVERNED_GEN0 = 50_000

_YIELD = object()
_PARK = object()

_ready: deque[tuple[Any, Any]] = deque()  # (coroutine, value to send it)
_current: Any = None  # the coroutine being stepped


def go(coro: Coroutine[Any, Any, Any]) -> None:
    """Start ``coro`` as a task; it runs after the tasks already ready."""
    _ready.append((coro, None))


def _wake(coro: Any, value: Any = None) -> None:
    _ready.append((coro, value))


@coroutine
def _trap(what: Any) -> Generator[Any, Any, Any]:
    return (yield what)


async def sleep(seconds: float) -> None:
    """``sleep(0)`` lets the other ready tasks run; more waits on the heap."""
    if seconds <= 0:
        await _trap(_YIELD)
    else:
        await _trap(time.monotonic() + seconds)


def run(main: Coroutine[Any, Any, Any], gc_mode: str = "governed") -> Any:
    """Run ``main`` and every task it starts until none is left; its value."""
    saved = gc.get_threshold()
    if gc_mode == "governed":
        gc.freeze()
        gc.set_threshold(max(saved[0], GOVERNED_GEN0), saved[1], saved[2])
    result: list[Any] = []

    async def wrapper() -> None:
        result.append(await main)

    try:
        _loop(wrapper())
    finally:
        if gc_mode == "governed":
            gc.set_threshold(*saved)
            gc.unfreeze()
    if not result:
        raise RuntimeError("floor: main never finished (a task is still parked)")
    return result[0]


def _loop(first: Any) -> None:
    global _current
    ready = _ready
    timers: list[tuple[float, int, Any]] = []  # (deadline, seq, coroutine)
    ready.append((first, None))
    popleft, append, seq = ready.popleft, ready.append, 0
    while True:
        # Run ready tasks until none is left.
        while ready:
            coro, value = popleft()
            _current = coro
            try:
                trap = coro.send(value)
            except StopIteration:
                continue
            if trap is _YIELD:
                append((coro, None))
            elif trap is not _PARK:  # a deadline
                seq += 1
                heapq.heappush(timers, (trap, seq, coro))

        # Sleep until the first deadline, then make every expired one ready.
        if not timers:
            break
        delay = timers[0][0] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            append((heapq.heappop(timers)[2], None))
    _current = None


class WaitGroup:
    """Go's WaitGroup for one waiter: ``add``, ``done``, ``await wait()``."""

    __slots__ = ("count", "waiter")

    def __init__(self) -> None:
        self.count = 0
        self.waiter: Any = None

    def add(self, n: int = 1) -> None:
        self.count += n

    def done(self) -> None:
        self.count -= 1
        if not self.count and self.waiter is not None:
            _wake(self.waiter)
            self.waiter = None

    async def wait(self) -> None:
        if self.count:
            self.waiter = _current
            await _trap(_PARK)


class Mutex:
    """A lock handed over in FIFO order: ``unlock`` passes it to the next."""

    __slots__ = ("locked", "waiters")

    def __init__(self) -> None:
        self.locked = False
        self.waiters: deque[Any] = deque()

    async def lock(self) -> None:
        if not self.locked:
            self.locked = True
            return
        self.waiters.append(_current)
        await _trap(_PARK)  # woken holding the lock

    def unlock(self) -> None:
        if self.waiters:
            _wake(self.waiters.popleft())
        else:
            self.locked = False


class _Selecting:
    """A select parked on several channels; the first sender fires it."""

    __slots__ = ("coro", "fired")

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.fired = False


class Channel:
    """A Go channel without close: ``cap`` buffered values, 0 = rendezvous.

    ``recvq`` holds parked receivers: a coroutine, or a ``_Selecting`` with
    its case index; ``sendq`` holds parked senders with their values.
    """

    __slots__ = ("buf", "cap", "recvq", "sendq")

    def __init__(self, cap: int = 0) -> None:
        self.cap = cap
        self.buf: deque[Any] = deque()
        self.recvq: deque[tuple[Any, int]] = deque()
        self.sendq: deque[tuple[Any, Any]] = deque()

    async def send(self, value: Any) -> None:
        recvq = self.recvq
        while recvq:  # a waiting receiver takes the value directly
            waiter, index = recvq.popleft()
            if waiter.__class__ is _Selecting:
                if waiter.fired:
                    continue  # that select was won by another channel
                waiter.fired = True
                _wake(waiter.coro, (index, value))
            else:
                _wake(waiter, value)
            return
        if len(self.buf) < self.cap:
            self.buf.append(value)
            return
        self.sendq.append((_current, value))
        await _trap(_PARK)  # a receiver took the value

    def _take(self) -> tuple[bool, Any]:
        """(True, value) if one can be received without waiting."""
        if self.buf:
            value = self.buf.popleft()
            if self.sendq:  # the first parked sender's value fills the slot
                sender, queued = self.sendq.popleft()
                self.buf.append(queued)
                _wake(sender)
            return True, value
        if self.sendq:
            sender, value = self.sendq.popleft()
            _wake(sender)
            return True, value
        return False, None

    async def recv(self) -> Any:
        ok, value = self._take()
        if ok:
            return value
        self.recvq.append((_current, 0))
        return await _trap(_PARK)


async def select_recv(channels: list[Channel]) -> tuple[int, Any]:
    """Receive from whichever channel has a value first: (index, value).

    Ready channels are tried from a random start (Go shuffles them); otherwise
    the task parks on all of them and the first sender wins. A parked
    select is left in the other queues and skipped there (``fired``).
    """
    n = len(channels)
    start = random.randrange(n)
    for k in range(n):
        i = (start + k) % n
        ok, value = channels[i]._take()
        if ok:
            return i, value
    waiter = _Selecting(_current)
    for i, ch in enumerate(channels):
        ch.recvq.append((waiter, i))
    result: tuple[int, Any] = await _trap(_PARK)
    return result
