"""Channels with Go's semantics, and ``select`` over them.

A channel is a ring buffer (``deque``) plus two wait queues. A send to a
waiting receiver hands the value over directly and makes the receiver run
next on the sender's worker; a receive from a full buffer refills it from
the first waiting sender. See "The wait protocol" in scheduler.py.
"""

from __future__ import annotations

import random
import sys
import types
from collections import deque

from .errors import Cancelled, ChannelClosed, RuntimeMisuse, WouldBlock
from .scheduler import _tls
from .task import Task
from .traps import Waitable, WaitQueue, end_wait, park, worker_and_task

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

_CLOSED: Any = object()  # resumption value: the channel closed while waiting


def _claim(entry: tuple[Any, ...]) -> bool:
    """Called with the channel lock held: win the right to end a wait.

    Plain entries are decided under the channel lock alone. A select entry
    (case >= 0) sits on several channels; it is decided under the task's
    stripe lock, which every channel's waker takes (protocol step 5).
    """
    task = entry[0]
    if task is None:
        return False  # a select entry its task withdrew (see select)
    seq = entry[1]
    if entry[3] < 0:
        if task._wait_seq != seq:
            return False
        task._wait_seq = seq + 1
        task._waiting_on = None
        return True
    with _stripe(task):
        if task._wait_seq != seq or task._waiting_on is not SELECT:
            return False
        task._wait_seq = seq + 1
        task._waiting_on = None
        return True


def _sched() -> Any:
    """The running scheduler: this worker's, or the process's from a thread."""
    w = getattr(_tls, "worker", None)
    if w is not None:
        return w.sched
    from .runtime import running_scheduler

    return running_scheduler()


def _stripe(task: Task) -> Any:
    return _sched().stripe(task)


def _hand(peer: Task, value: Any) -> None:
    """Resume a claimed plain waiter with ``value``, next on this worker."""
    peer._value = value
    peer._exc = None
    w = getattr(_tls, "worker", None)
    if w is not None:
        w.push_next(peer)
    else:
        _sched().push_global(peer)


def _wake(entry: tuple[Any, ...], value: Any, closed: bool = False) -> None:
    """Resume a claimed waiter; ``value`` is what a receiver gets."""
    task = entry[0]
    case = entry[3]
    sched = _sched()
    if case >= 0:
        if closed and entry[4]:  # a send case on a closed channel
            sched.ready(task, exc=ChannelClosed("send on closed channel"))
            return
        if entry[4]:
            sched.ready(task, (case, None))
        else:
            sched.ready(task, (case, (None, False) if closed else (value, True)))
        return
    if closed:
        if entry[4]:
            sched.ready(task, exc=ChannelClosed("send on closed channel"))
        else:
            sched.ready(task, _CLOSED)
        return
    sched.ready(task, value)


class Channel(Waitable):
    """A Go channel: ``Channel(n=0)``; 0 is unbuffered (a rendezvous).

    ``await ch.send(v)``, ``v = await ch.recv()``, ``v, ok = await
    ch.recv_ok()``, ``async for v in ch`` (ends when closed and drained),
    ``ch.try_send(v)``, ``ch.try_recv()``, ``ch.close()``, ``len(ch)``,
    ``ch.cap``. Safe to share between tasks on any worker.
    """

    # Lock rule: every field but ``cap`` is guarded by ``_lock``. Invariants:
    # a waiting sender implies a full buffer; a waiting receiver implies an
    # empty buffer (stale entries aside); once closed, no sender waits.
    __slots__ = ("__weakref__", "_buf", "_closed", "_lock", "_recvq", "_sendq", "cap")

    def __init__(self, n: int = 0) -> None:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(
                f"Channel(n) takes an int capacity (0 = unbuffered), not {n!r}"
            )
        if not 0 <= n <= sys.maxsize:
            raise ValueError(
                f"Channel(n) needs a capacity from 0 (unbuffered) to "
                f"sys.maxsize, not {n!r}"
            )
        import threading

        self.cap = n
        self._buf: deque[Any] = deque()
        self._closed = False
        self._lock = threading.Lock()
        # Entries: (task, seq, value, case, is_send); case -1 = plain wait.
        self._recvq = WaitQueue()
        self._sendq = WaitQueue()

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        # A channel is a thing, not a container: an empty one is still true
        # (`if ch:` and `a or b` must not depend on what is buffered).
        return True

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<curcor.Channel {len(self._buf)}/{self.cap}{state}>"

    # -- sending --------------------------------------------------------------

    @types.coroutine
    def send(self, value: Any) -> Any:
        """Send ``value``; wait while the buffer is full (or, unbuffered, until
        a receiver takes it).

        Raises:
            ChannelClosed: the channel is closed, or closed while waiting.
        """
        try:
            w = _tls.worker
            task = w.current
        except AttributeError:
            task = None
        if task is None:
            worker_and_task("Channel.send()")
        if task._cancel_pending:
            raise Cancelled()
        lock = self._lock
        lock.acquire()

        # Fast path: a plain receiver waits; hand the value over directly.
        recvq = self._recvq
        if recvq and not self._closed:
            entry = recvq[0]
            peer = entry[0]
            if entry[3] < 0 and peer._wait_seq == entry[1]:
                recvq.popleft()
                peer._wait_seq += 1
                peer._waiting_on = None
                lock.release()
                peer._value = value  # (_exc is None: the loop cleared it)
                w.push_next(peer)
                return None
        if (recvq or self._closed or len(self._buf) < self.cap) and self._offer(value):
            return None

        # Wait for a receiver (protocol steps 1-2, inlined from traps.park:
        # this path and its twin in _recv stay inline, the hot path rule).
        sendq = self._sendq
        sendq.append((task, task._wait_seq, value, -1, True))
        if len(sendq) > 16 and len(sendq) > sendq.limit:
            sendq.compact()
        task._waiting_on = self
        if task._cancel_pending:
            task._wait_seq += 1
            task._waiting_on = None
            lock.release()
            raise Cancelled()
        yield lock  # the park trap: the worker releases the lock (protocol step 2)
        return None

    def try_send(self, value: Any) -> bool:
        """Send without waiting; False when it would have to wait.

        Raises:
            ChannelClosed: the channel is closed.
        """
        _thread_check("Channel.try_send()")
        self._lock.acquire()
        if self._offer(value):
            return True
        self._lock.release()
        return False

    def _offer(self, value: Any) -> bool:
        """Called with ``_lock`` held; releases it when returning True."""
        if self._closed:
            self._lock.release()
            raise ChannelClosed("send on closed channel")
        recvq = self._recvq
        while recvq:
            entry = recvq.popleft()
            peer = entry[0]
            if entry[3] < 0:
                # A plain receiver: claimed under the channel lock alone.
                if peer._wait_seq != entry[1]:
                    continue
                peer._wait_seq += 1
                peer._waiting_on = None
                self._lock.release()
                _hand(peer, value)
                return True
            if _claim(entry):
                self._lock.release()
                _wake(entry, value)
                return True
        if len(self._buf) < self.cap:
            self._buf.append(value)
            self._lock.release()
            return True
        return False

    # -- receiving ------------------------------------------------------------

    def recv(self) -> Any:
        """Receive a value; wait while there is none: ``v = await ch.recv()``.

        Raises:
            ChannelClosed: the channel is closed and drained.
        """
        return self._recv(_RECV)

    def recv_ok(self) -> Any:
        """Receive as Go's ``v, ok := <-ch``: ``(value, True)``, or
        ``(None, False)`` once the channel is closed and drained."""
        return self._recv(_RECV_OK)

    @types.coroutine
    def _recv(self, mode: int) -> Any:
        """``recv`` (mode _RECV), ``recv_ok`` (_RECV_OK) or ``__anext__``."""
        try:
            w = _tls.worker
            task = w.current
        except AttributeError:
            task = None
        if task is None:
            worker_and_task(_RECV_NAMES[mode])
        if task._cancel_pending:
            raise Cancelled()
        lock = self._lock
        lock.acquire()

        # Fast path: unbuffered, a plain sender waits; take its value.
        sendq = self._sendq
        if sendq and not self._buf:
            entry = sendq[0]
            peer = entry[0]
            if entry[3] < 0 and peer._wait_seq == entry[1]:
                sendq.popleft()
                peer._wait_seq += 1
                peer._waiting_on = None
                lock.release()
                w.push_next(peer)  # (_value, _exc are None: the loop cleared them)
                return (entry[2], True) if mode == _RECV_OK else entry[2]
        if self._buf or sendq or self._closed:
            value = self._take()
            if value is not _NOTHING:
                return _received(value, mode)

        # Wait for a sender (protocol steps 1-2, inlined from traps.park).
        recvq = self._recvq
        recvq.append((task, task._wait_seq, None, -1, False))
        if len(recvq) > 16 and len(recvq) > recvq.limit:
            recvq.compact()
        task._waiting_on = self
        if task._cancel_pending:
            task._wait_seq += 1
            task._waiting_on = None
            lock.release()
            raise Cancelled()
        value = yield lock  # park; see send()
        if value is _CLOSED:
            return _received(value, mode)
        return (value, True) if mode == _RECV_OK else value

    def try_recv(self) -> tuple[Any, bool]:
        """Receive without waiting: ``(value, True)``, or ``(None, False)`` once
        closed and drained.

        Raises:
            WouldBlock: nothing to receive and the channel is still open.
        """
        _thread_check("Channel.try_recv()")
        self._lock.acquire()
        value = self._take()
        if value is _NOTHING:
            self._lock.release()
            raise WouldBlock("nothing to receive; the channel is open and empty")
        if value is _CLOSED:
            return (None, False)
        return (value, True)

    def _take(self) -> Any:
        """Called with ``_lock`` held; releases it unless returning _NOTHING."""
        buf = self._buf
        sendq = self._sendq
        value = buf.popleft() if buf else _NOTHING
        while sendq:
            entry = sendq.popleft()
            peer = entry[0]
            if entry[3] < 0:
                # A plain sender: claimed under the channel lock alone.
                if peer._wait_seq != entry[1]:
                    continue
                peer._wait_seq += 1
                peer._waiting_on = None
            elif not _claim(entry):
                continue
            if value is _NOTHING:
                value = entry[2]
            else:
                buf.append(entry[2])  # refill the slot just taken
            self._lock.release()
            if entry[3] < 0:
                _hand(peer, None)
            else:
                _wake(entry, None)
            return value
        if value is not _NOTHING:
            self._lock.release()
            return value
        if self._closed:
            self._lock.release()
            return _CLOSED
        return _NOTHING

    def __aiter__(self) -> Channel:
        return self

    def __anext__(self) -> Any:
        return self._recv(_ANEXT)

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Close the channel: receivers drain the buffer, then get "closed";
        waiting senders raise ``ChannelClosed``.

        Raises:
            ChannelClosed: the channel was already closed.
        """
        _thread_check("Channel.close()")
        self._close()

    def _close(self) -> None:
        """``close`` from anywhere (used by contexts, which threads may cancel)."""
        with self._lock:
            if self._closed:
                raise ChannelClosed("close of closed channel")
            self._closed = True
            woken = [e for e in self._recvq if _claim(e)]
            woken += [e for e in self._sendq if _claim(e)]
            self._recvq.clear()
            self._sendq.clear()
        for entry in woken:
            _wake(entry, None, closed=True)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (values may still be buffered)."""
        return self._closed


_NOTHING: Any = object()

# Receive modes: what a receive returns, and how it reports "closed".
_RECV, _RECV_OK, _ANEXT = 0, 1, 2
_RECV_NAMES = ("Channel.recv()", "Channel.recv_ok()", "async for over a Channel")


def _received(value: Any, mode: int) -> Any:
    """Shape a received value (or the closed marker) for ``mode``."""
    if value is _CLOSED:
        if mode == _RECV:
            raise ChannelClosed("receive from closed and drained channel")
        if mode == _RECV_OK:
            return (None, False)
        raise StopAsyncIteration
    return (value, True) if mode == _RECV_OK else value


def _thread_check(what: str) -> None:
    if getattr(_tls, "worker", None) is None:
        raise RuntimeMisuse(
            f"{what} was called from a thread outside the curcor runtime; "
            "channels belong to tasks. From a plain thread use "
            "curcor.from_thread(ch.send, value) (or ch.recv, ch.close)"
        )


# -- select -------------------------------------------------------------------


class _SelectWait:
    """The ``_waiting_on`` of a task parked in ``select``; claims use stripes."""

    def _abort(self, task: Task) -> bool:
        with _stripe(task):
            return end_wait(task, self)


SELECT = _SelectWait()


class _Case:
    __slots__ = ("ch", "is_send", "value")

    def __init__(self, ch: Channel, is_send: bool, value: Any) -> None:
        if not isinstance(ch, Channel):
            kind = "send" if is_send else "recv"
            raise TypeError(
                f"curcor.{kind}() takes a curcor.Channel, not {type(ch).__name__}; "
                f"to disable a case, pass None to select() in place of the "
                f"{kind}(...) case"
            )
        self.ch = ch
        self.is_send = is_send
        self.value = value


def recv(ch: Channel) -> _Case:
    """A receive case for ``select``; its value is ``(v, ok)`` as in Go."""
    return _Case(ch, False, None)


def send(ch: Channel, value: Any) -> _Case:
    """A send case for ``select``; its value is None."""
    return _Case(ch, True, value)


async def select(*cases: _Case | None, default: bool = False) -> tuple[int, Any]:
    """Wait until one case can proceed, do it, return ``(index, value)``.

    Cases are ``curcor.recv(ch)`` (value ``(v, ok)``), ``curcor.send(ch, v)``
    (value None) and ``curcor.recv(curcor.after(s))`` for a timeout; ``None``
    is a disabled case. Several ready cases: one is picked uniformly at
    random. ``default=True`` returns ``(-1, None)`` when none is ready. A
    cancelled select withdraws from every channel and loses no value.

    Raises:
        ChannelClosed: the chosen case sends on a closed channel.
    """
    w, task = worker_and_task("curcor.select()")
    if default is not False and default is not True:
        raise TypeError(f"select(default=) takes True or False, not {default!r}")
    if task._cancel_pending:
        raise Cancelled()
    active = [(i, c) for i, c in enumerate(cases) if c is not None]
    for i, c in active:
        if not isinstance(c, _Case):
            raise TypeError(
                f"select() case {i} is {c!r}; write curcor.recv(ch), "
                "curcor.send(ch, value) or None"
            )
    if not active:
        if default:
            return (-1, None)
        return await _block_forever(task)

    # Lock every channel once, in a global order, so two selects cannot
    # deadlock each other.
    chans = sorted({id(c.ch): c.ch for _, c in active}.values(), key=id)
    for ch in chans:
        ch._lock.acquire()
    order = active[:]
    rng = w.rng if w.rng is not None else random
    rng.shuffle(order)
    try:
        done = _try_cases(order)
    except BaseException:
        for ch in chans:
            ch._lock.release()
        raise
    if done is not None:
        for ch in chans:
            ch._lock.release()
        return _finish_case(done)
    if default:
        for ch in chans:
            ch._lock.release()
        return (-1, None)

    # Nothing ready: wait on every case at once.
    seq = task._wait_seq
    entries = []
    for i, c in active:
        if c.is_send:
            entry = [task, seq, c.value, i, True]
            c.ch._sendq.push(entry)  # type: ignore[arg-type]
        else:
            entry = [task, seq, None, i, False]
            c.ch._recvq.push(entry)  # type: ignore[arg-type]
        entries.append(entry)
    try:
        result = await park(task, SELECT, tuple(ch._lock for ch in chans))
    finally:
        # The entries left on other channels are stale now; let go of the
        # task so a stale entry never keeps its record alive (the record
        # recycles, and an unjoined failure is reported at once).
        for entry in entries:
            entry[0] = None
    return result


def _try_cases(order: list[tuple[int, _Case]]) -> Any:
    """Called with all the channels' locks held: run the first ready case."""
    for i, c in order:
        ch = c.ch
        if c.is_send:
            if ch._closed:
                return (i, _SEND_CLOSED)
            while ch._recvq:
                entry = ch._recvq.popleft()
                if _claim(entry):
                    return (i, None, entry, c.value)
            if len(ch._buf) < ch.cap:
                ch._buf.append(c.value)
                return (i, None)
        else:
            if ch._buf:
                value = ch._buf.popleft()
                while ch._sendq:
                    entry = ch._sendq.popleft()
                    if _claim(entry):
                        ch._buf.append(entry[2])
                        return (i, (value, True), entry, None)
                return (i, (value, True))
            while ch._sendq:
                entry = ch._sendq.popleft()
                if _claim(entry):
                    return (i, (entry[2], True), entry, None)
            if ch._closed:
                return (i, (None, False))
    return None


_SEND_CLOSED: Any = object()


def _finish_case(done: tuple[Any, ...]) -> tuple[int, Any]:
    """After the locks are released: wake the peer of the chosen case."""
    i, value = done[0], done[1]
    if value is _SEND_CLOSED:
        raise ChannelClosed(f"send on closed channel (select case {i})")
    if len(done) == 4:
        _wake(done[2], done[3])
    return (i, value)


class _Forever(Waitable):
    """A wait nothing ends but cancellation (``select()`` with no cases)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()


async def _block_forever(task: Task) -> Any:
    forever = _Forever()
    forever._lock.acquire()
    return await park(task, forever, forever._lock)
