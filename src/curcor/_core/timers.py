"""Clocks and the timer heap.

One heap per runtime holds every deadline: sleeping tasks, cancel-scope
deadlines and callbacks (``after``, ``Ticker``, ``Timer``, context
timeouts). Entries are removed lazily: a cancelled entry stays in the heap,
is recognised as stale when it reaches the top, and the heap is rebuilt when
stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
import math
import threading
import time

from .errors import check_seconds

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# Entry kinds. An entry is a list [deadline, seq, kind, obj, token]:
# WAKE: obj is a task, token its _wait_seq when it went to sleep;
# CALL: obj is a callable taking no arguments, token is a _Handle.
WAKE = 0
CALL = 1


class Clock:
    """The real monotonic clock; tests swap in a ``FakeClock``."""

    autojump = False

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def jump_to(self, deadline: float) -> None:
        """Only fake clocks can jump; the real clock ignores this."""


class FakeClock(Clock):
    """A clock that stands still until every task is blocked.

    When all tasks are blocked and a timer is pending, the runtime jumps this
    clock straight to the next deadline instead of sleeping, so timing tests
    run instantly and deterministically.
    """

    autojump = True

    def __init__(self, start: float = 0.0) -> None:
        start = check_seconds(start, "FakeClock(start)")
        if start in (math.inf, -math.inf):
            raise ValueError("FakeClock(start) needs a finite time, e.g. 0.0")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """The fake time in seconds."""
        return self._now

    def jump_to(self, deadline: float) -> None:
        """Move the clock forward to ``deadline`` (never backwards)."""
        with self._lock:
            if deadline > self._now:
                self._now = deadline

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` by hand.

        Raises:
            ValueError: ``seconds`` is negative or infinite (a monotonic
                clock never goes back; nothing would ever run after inf).
        """
        seconds = check_seconds(seconds, "FakeClock.advance()")
        if not 0 <= seconds < math.inf:
            raise ValueError(
                f"FakeClock.advance() moves forward by a finite amount >= 0, "
                f"not {seconds!r}"
            )
        with self._lock:
            self._now += seconds


class Handle:
    """A cancellable callback entry (``after``, ``Timer``, scope deadlines).

    Lock rule: ``active`` changes under the owning ``Timers.lock``, so a
    cancel and a firing cannot both claim the entry.
    """

    __slots__ = ("_timers", "active")

    def __init__(self, timers: Timers) -> None:
        self._timers = timers
        self.active = True

    def cancel(self) -> bool:
        """Stop the callback from firing; True if it had not fired yet.

        The entry stays in the heap, counted stale, until a purge."""
        timers = self._timers
        with timers.lock:
            was, self.active = self.active, False
            if was:
                timers._count_stale()
        return was

    def abandon(self) -> None:
        """Cancel without the lock, from a weakref callback (which may run
        wherever the last reference dropped, the timer lock held included):
        the entry will not fire and is counted at the next ``call_at``."""
        if self.active:
            self.active = False
            self._timers.abandoned += 1  # a racy count, only a purge hint


class Timers:
    """The runtime's timer heap.

    Lock rule: ``heap``, ``_seq`` and ``_stale`` are guarded by ``lock``. A
    sleeping task's wait is ended under ``lock`` too (its ``_waiting_on`` is
    this object), so a firing timer and a cancellation cannot both wake it.
    Tasks and callbacks are woken or called after ``lock`` is released.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.heap: list[list[Any]] = []
        self._seq = 0
        self._stale = 0
        # Entries cancelled by Handle.abandon, not yet counted in _stale.
        # Written without the lock: a lost update only delays a purge.
        self.abandoned = 0
        self.fired = 0
        # Called (lock-free) when a new entry became the earliest, so that
        # a poller waiting for a later deadline re-computes its timeout.
        self.on_earlier: Callable[[], None] = lambda: None

    def add_sleep(self, deadline: float, task: Any) -> list[Any]:
        """Called with ``lock`` held: wake ``task`` at ``deadline``.

        Returns the entry; the sleeper sets ``entry[3] = None`` when its
        sleep ends, so a stale entry never holds the task."""
        self._seq += 1
        entry = [deadline, self._seq, WAKE, task, task._wait_seq]
        heapq.heappush(self.heap, entry)
        if self.heap[0] is entry:
            self.on_earlier()
        return entry

    def call_at(self, deadline: float, fn: Callable[[], Any]) -> Handle:
        """Call ``fn()`` on a worker at ``deadline``; cancel with the handle."""
        if deadline != deadline:
            raise ValueError("a timer deadline cannot be NaN")
        handle = Handle(self)
        entry = [deadline, 0, CALL, fn, handle]
        with self.lock:
            if self.abandoned:
                self._stale += self.abandoned - 1
                self.abandoned = 0
                self._count_stale()
            self._seq += 1
            entry[1] = self._seq
            heapq.heappush(self.heap, entry)
            earliest = self.heap[0] is entry
        if earliest:
            self.on_earlier()
        return handle

    def _abort(self, task: Any) -> bool:
        """End a sleep early (cancellation); True if it was still asleep."""
        with self.lock:
            if task._waiting_on is not self:
                return False
            task._wait_seq += 1
            task._waiting_on = None
            self._count_stale()
            return True

    def _count_stale(self) -> None:
        """Called with ``lock`` held: one more dead entry; purge when dead
        entries outnumber live ones (amortised O(1) per entry)."""
        self._stale += 1
        if self._stale > 64 and self._stale * 2 > len(self.heap):
            self._purge()

    def _purge(self) -> None:
        """Called with ``lock`` held: drop stale entries and re-heapify."""
        self.heap = [e for e in self.heap if _live(e)]
        heapq.heapify(self.heap)
        self._stale = 0

    def next_deadline(self) -> float | None:
        """The earliest live deadline, dropping stale entries from the top."""
        with self.lock:
            heap = self.heap
            while heap and not _live(heap[0]):
                heapq.heappop(heap)
                self._stale = max(0, self._stale - 1)
            return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[list[Any]]:
        """Take the live entries due at ``now``; the caller wakes or calls them.

        A WAKE entry's task is claimed here (its wait ended under ``lock``).
        """
        due: list[list[Any]] = []
        with self.lock:
            heap = self.heap
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)
                if entry[2] == WAKE:
                    task = entry[3]
                    if (
                        task is None
                        or task._wait_seq != entry[4]
                        or task._waiting_on is not self
                    ):
                        self._stale = max(0, self._stale - 1)
                        continue
                    task._wait_seq += 1
                    task._waiting_on = None
                elif not entry[4].active:
                    self._stale = max(0, self._stale - 1)
                    continue
                else:
                    entry[4].active = False
                due.append(entry)
        self.fired += len(due)
        return due


def _live(entry: list[Any]) -> bool:
    if entry[2] == WAKE:
        task = entry[3]
        return bool(
            task is not None
            and task._wait_seq == entry[4]
            and task._waiting_on is not None
        )
    return bool(entry[4].active)
