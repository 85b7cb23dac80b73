"""The idle wait of the runtime: one poller per runtime, over a chosen backend.

The contract every backend fulfils, with the same method names:

- ``wait(timeout)``: block until a registered event, a ``wakeup()`` from any
  thread, or ``timeout`` seconds (None = forever); return the ready events.
- ``wakeup()``: make a current or the next ``wait`` return at once. Safe from
  any thread and from a signal handler (one non-blocking write).
- ``close()``: release the descriptors; idempotent.

Descriptor waits, under ``io_lock``: ``watch`` (make a task the reader or
writer of a descriptor), ``dispatch`` (end the waits the events satisfy),
``closing`` (unregister a descriptor before it is closed) and
``FdWait._abort`` (withdraw a cancelled wait).

Two implementations keep that contract:

- ``Poller``, over the standard library's ``selectors`` classes (kqueue,
  poll, select): level-triggered, a descriptor is registered while a task
  waits on it and unregistered when the wait ends. Two registration calls
  per wait.
- ``EpollPoller``, the default on Linux: each descriptor is registered once,
  edge-triggered, for reading and writing, and stays registered until
  ``closing``. An edge that finds no task waiting sets a ready flag, which
  the next wait consumes instead of parking (Go's netpoller does the same).
  No registration call per wait: on a keep-alive server that is most of
  the poller's system calls.

The edge rule is only sound for a caller that waits right after its own
system call failed with EAGAIN (any edge after that failure is either
flagged or wakes it): ``retry_readable``/``retry_writable`` in io.py, used
by curcor's sockets and pipes. The public ``wait_readable`` promises a
level ("returns once the descriptor can be read"), so it re-arms the
registration, which makes epoll report the current state again.

Only the worker that holds the poller role (``Scheduler.poller``) calls
``wait``.
"""

from __future__ import annotations

import threading

from .errors import ConfigError

TYPE_CHECKING = False  # typing costs import time (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any

BACKENDS: dict[str, str] = {
    "epoll": "EpollSelector",
    "kqueue": "KqueueSelector",
    "poll": "PollSelector",
    "select": "SelectSelector",
}


def resolve_backend(name: str) -> str:
    """The backend ``name`` stands for on this OS (``auto`` picks the best).

    Raises:
        ConfigError: the name is unknown or the OS lacks that backend.
    """
    import selectors

    if name == "auto":
        for candidate in ("epoll", "kqueue", "poll", "select"):
            if hasattr(selectors, BACKENDS[candidate]):
                return candidate
        return "select"
    if name not in BACKENDS:
        allowed = ", ".join(["auto", *BACKENDS])
        raise ConfigError(f"scheduler={name!r} is not a backend; use one of {allowed}")
    if not hasattr(selectors, BACKENDS[name]):
        raise ConfigError(
            f"scheduler={name!r} is not available on this OS; use auto, or one of "
            + ", ".join(n for n, c in BACKENDS.items() if hasattr(selectors, c))
        )
    return name


def make_poller(backend: str = "auto") -> Poller:
    """The poller for ``backend`` (``auto`` picks the best this OS has)."""
    name = resolve_backend(backend)
    if name == "epoll":
        return EpollPoller()
    return Poller(name)


class Poller:
    """One runtime's idle wait and descriptor registry (see the contract).

    Lock rule: ``io_lock`` guards ``_fds``, ``waiters`` and every selector
    registration change; it is also the lock a task parks with while it
    waits for a descriptor (see "The wait protocol" in scheduler.py). The
    blocking ``wait`` itself runs under ``poll_lock`` only, so tasks on
    other workers can register while one worker sleeps in the kernel.
    """

    def __init__(self, backend: str = "auto") -> None:
        import selectors
        import socket

        self.READ = selectors.EVENT_READ
        self.WRITE = selectors.EVENT_WRITE
        self.backend = resolve_backend(backend)
        self._selector: Any = getattr(selectors, BACKENDS[self.backend])()
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._wake_fd = self._rsock.fileno()
        self._selector.register(self._wake_fd, self.READ, None)
        self.io_lock = threading.Lock()
        self.poll_lock = threading.Lock()
        self._fds: dict[int, FdWait] = {}
        self.waiters = 0  # tasks waiting on a descriptor now
        self.waits = 0  # how many times wait() blocked (stats)
        # poll and select read their descriptor sets when the call starts: a
        # registration made meanwhile needs a wakeup to be seen.
        self._rescan = self.backend in ("poll", "select")

    def wakeup_fd(self) -> int:
        """The descriptor ``signal.set_wakeup_fd`` should write to."""
        return self._wsock.fileno()

    def wait(self, timeout: float | None) -> list[Any]:
        """Called with ``poll_lock`` held: block until an event, a wakeup or
        the timeout; drain the wakeups; return the descriptor events."""
        self.waits += 1
        try:
            events = self._selector.select(timeout)
        except (OSError, ValueError):
            # A descriptor closed behind the registry's back (EBADF): drop
            # registrations whose descriptor is gone, then let the caller
            # poll again.
            self._drop_dead()
            return []
        ready = []
        for key, mask in events:
            if key.fd == self._wake_fd:
                self._drain()
            else:
                ready.append((key.fd, mask))
        return ready

    def wakeup(self) -> None:
        """Make the current or next ``wait`` return; never blocks."""
        try:
            self._wsock.send(b"\0")
        except (BlockingIOError, InterruptedError, OSError):
            pass  # a full pipe already guarantees a wakeup

    def _drain(self) -> None:
        try:
            while self._rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError, OSError):
            pass

    # -- descriptor waits -------------------------------------------------------

    def watch(
        self, fd: int, task: Any, writing: bool, owner: Any = None, edge: bool = False
    ) -> FdWait | None:
        """Called with ``io_lock`` held: make ``task`` the reader (or writer) of
        ``fd`` and register interest; None when the descriptor is known to be
        ready already (the caller retries instead of parking). ``owner`` and
        ``edge`` matter to ``EpollPoller`` only.

        Raises:
            BusyResourceError: another task waits for the same direction.
            OSError: the descriptor cannot be registered.
        """
        st = self._fds.get(fd)
        if st is None:
            st = self._fds[fd] = FdWait(self, fd)
        _check_free(st, writing)
        entry = (task, task._wait_seq)
        if writing:
            st.writer = entry
        else:
            st.reader = entry
        try:
            self._update(st)
        except (OSError, ValueError):
            if writing:
                st.writer = None
            else:
                st.reader = None
            self._forget(st)
            raise
        self.waiters += 1
        return st

    def _update(self, st: FdWait) -> None:
        """Called with ``io_lock`` held: register exactly the wanted events."""
        want = (self.READ if st.reader else 0) | (self.WRITE if st.writer else 0)
        if want == st.events:
            return
        if want == 0:
            self._selector.unregister(st.fd)
        elif st.events == 0:
            self._selector.register(st.fd, want)
        else:
            self._selector.modify(st.fd, want)
        st.events = want
        if want and self._rescan:
            self.wakeup()

    def _forget(self, st: FdWait) -> None:
        if st.reader is None and st.writer is None and st.events == 0:
            self._fds.pop(st.fd, None)

    def dispatch(self, events: list[Any]) -> list[Any]:
        """Take the tasks whose descriptors are ready (their waits ended)."""
        woken = []
        with self.io_lock:
            for fd, mask in events:
                st = self._fds.get(fd)
                if st is None:
                    continue
                if mask & self.READ:
                    woken += st.take(True)
                if mask & self.WRITE:
                    woken += st.take(False)
                self._settle(st)
        return woken

    def _settle(self, st: FdWait) -> None:
        """Called with ``io_lock`` held: update interest after a change."""
        try:
            self._update(st)
        except (OSError, ValueError, KeyError):
            st.events = 0
        self._forget(st)

    def closing(self, fd: int) -> list[Any]:
        """Before ``fd`` is closed: unregister it and take its waiters, so a
        reused descriptor number never gets a stale event."""
        with self.io_lock:
            st = self._fds.pop(fd, None)
            if st is None:
                return []
            woken = st.take(True) + st.take(False)
            self._unregister(st)
            return woken

    def _unregister(self, st: FdWait) -> None:
        """Called with ``io_lock`` held: drop ``st``'s selector registration
        (already gone when its descriptor was closed: that is fine)."""
        if st.events:
            try:
                self._selector.unregister(st.fd)
            except (OSError, ValueError, KeyError):
                pass
            st.events = 0

    def _drop_dead(self) -> None:
        import os

        with self.io_lock:
            for fd, st in list(self._fds.items()):
                try:
                    os.fstat(fd)
                except OSError:
                    self._unregister(st)

    def close(self) -> None:
        """Release the descriptors; calling it twice is harmless."""
        if self._selector is None:
            return
        self._selector.close()
        self._selector = None
        self._rsock.close()
        self._wsock.close()


class EpollPoller(Poller):
    """Linux epoll, edge-triggered, one registration per descriptor (see the
    module's docstring). Same lock rule as ``Poller``; the ready flags
    (``FdWait.rready``/``wready``) are guarded by ``io_lock`` too."""

    def __init__(self) -> None:
        import select
        import socket

        self.READ = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP
        self.READ |= select.EPOLLERR
        self.WRITE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
        self._interest = (
            select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
        )
        self.backend = "epoll"
        self._epoll: Any = select.epoll()
        self._selector = self._epoll  # close() and the base's checks
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._wake_fd = self._rsock.fileno()
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self.io_lock = threading.Lock()
        self.poll_lock = threading.Lock()
        self._fds: dict[int, FdWait] = {}
        self.waiters = 0
        self.waits = 0
        self._rescan = False

    def wait(self, timeout: float | None) -> list[Any]:
        """As ``Poller.wait``."""
        self.waits += 1
        try:
            events = self._epoll.poll(-1 if timeout is None else timeout)
        except InterruptedError:
            return []
        wake = self._wake_fd
        for i, (fd, _) in enumerate(events):
            if fd == wake:
                self._drain()
                del events[i]
                break
        return events

    def watch(
        self, fd: int, task: Any, writing: bool, owner: Any = None, edge: bool = False
    ) -> FdWait | None:
        """As ``Poller.watch``. ``edge``: the caller's own system call just
        failed with EAGAIN, so a ready flag may stand in for a wait; else
        (a level wait) the registration is re-armed. A descriptor first
        seen, or now held by another ``owner`` (its number was reused after
        a close this poller was not told of), is registered afresh."""
        st = self._fds.get(fd)
        if st is None:
            st = self._fds[fd] = FdWait(self, fd)
        _check_free(st, writing)
        if st.events == 0 or st.owner is not owner or not edge or owner is None:
            self._arm(st)
            st.owner = owner
        elif writing and st.wready:
            st.wready = False
            return None
        elif not writing and st.rready:
            st.rready = False
            return None
        entry = (task, task._wait_seq)
        if writing:
            st.writer = entry
        else:
            st.reader = entry
        self.waiters += 1
        return st

    def _arm(self, st: FdWait) -> None:
        """Register ``st.fd`` (or re-arm it: epoll then reports its current
        state as a new edge). Raises OSError (EBADF when it is closed)."""
        try:
            self._epoll.register(st.fd, self._interest)
        except FileExistsError:
            self._epoll.modify(st.fd, self._interest)
        except BaseException:
            self._forget(st)
            raise
        st.events = self._interest
        st.rready = st.wready = False

    def dispatch(self, events: list[Any]) -> list[Any]:
        """As ``Poller.dispatch``; an edge nobody waits for sets a flag."""
        woken: list[Any] = []
        read, write = self.READ, self.WRITE
        with self.io_lock:
            fds = self._fds
            for fd, mask in events:
                st = fds.get(fd)
                if st is None:
                    continue
                if mask & read:
                    task = st.take(True)
                    if task:
                        woken += task
                    else:
                        st.rready = True
                if mask & write:
                    task = st.take(False)
                    if task:
                        woken += task
                    else:
                        st.wready = True
        return woken

    def _settle(self, st: FdWait) -> None:
        """Nothing to update: the registration outlives each wait."""

    def _forget(self, st: FdWait) -> None:
        if st.reader is None and st.writer is None and st.events == 0:
            self._fds.pop(st.fd, None)

    def _unregister(self, st: FdWait) -> None:
        if st.events:
            try:
                self._epoll.unregister(st.fd)
            except (OSError, ValueError):
                pass  # closed behind our back: the kernel dropped it
            st.events = 0

    def _drop_dead(self) -> None:
        """epoll drops closed descriptors itself."""


def _check_free(st: FdWait, writing: bool) -> None:
    """Raise BusyResourceError if a live wait holds ``st`` in that direction."""
    held = st.writer if writing else st.reader
    if held is not None and held[0]._wait_seq == held[1]:
        what = "write to" if writing else "read from"
        raise BusyResourceError(
            f"another task is already waiting to {what} descriptor {st.fd}; "
            "one reader and one writer at a time"
        )


class BusyResourceError(RuntimeError):
    """Two tasks tried to read (or to write) the same descriptor at once."""


class FdWait:
    """The reader and writer waiting on one descriptor (Go's pollDesc).

    Guarded by the poller's ``io_lock``. ``reader`` and ``writer`` are wait
    entries ``(task, seq)``; a task waiting here has this object as its
    ``_waiting_on``.
    """

    __slots__ = (
        "events",
        "fd",
        "owner",
        "poller",
        "reader",
        "rready",
        "wready",
        "writer",
    )

    def __init__(self, poller: Poller, fd: int) -> None:
        self.poller = poller
        self.fd = fd
        self.reader: tuple[Any, int] | None = None
        self.writer: tuple[Any, int] | None = None
        self.events = 0  # the events registered with the selector now
        # EpollPoller only: who registered the descriptor, and edges that
        # came while nobody waited (consumed by the next edge wait).
        self.owner: Any = None
        self.rready = False
        self.wready = False

    def take(self, reading: bool) -> list[Any]:
        """Called with ``io_lock`` held: end the reader's (writer's) wait."""
        entry = self.reader if reading else self.writer
        if reading:
            self.reader = None
        else:
            self.writer = None
        if entry is None:
            return []
        task, seq = entry
        if task._wait_seq != seq or task._waiting_on is not self:
            return []
        task._wait_seq += 1
        task._waiting_on = None
        self.poller.waiters -= 1
        return [task]

    def _abort(self, task: Any) -> bool:
        """Cancellation: withdraw ``task``'s interest; True if it waited."""
        poller = self.poller
        with poller.io_lock:
            if task._waiting_on is not self:
                return False
            for reading, entry in ((True, self.reader), (False, self.writer)):
                if entry is not None and entry[0] is task:
                    self.take(reading)
            poller._settle(self)
            return True
