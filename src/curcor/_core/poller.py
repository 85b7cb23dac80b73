"""The idle wait of the runtime: one poller per runtime, over a chosen backend.

The contract every backend fulfils, with the same method names:

- ``wait(timeout)``: block until a registered event, a ``wakeup()`` from any
  thread, or ``timeout`` seconds (None = forever); return the ready events.
- ``wakeup()``: make a current or the next ``wait`` return at once. Safe from
  any thread and from a signal handler (one non-blocking write).
- ``close()``: release the descriptors; idempotent.

The backends are the standard library's ``selectors`` classes (epoll, kqueue,
poll, select), so each one has the same shape. Only the worker that holds
the poller role (``Scheduler.poller``) calls ``wait``; the I/O registration
methods arrive with the network layer.
"""

from __future__ import annotations

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


class Poller:
    """One runtime's idle wait over one backend (see the module contract)."""

    def __init__(self, backend: str = "auto") -> None:
        import selectors
        import socket

        self._events = selectors.EVENT_READ
        self.backend = resolve_backend(backend)
        self._selector: Any = getattr(selectors, BACKENDS[self.backend])()
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._selector.register(self._rsock, self._events, None)
        self.waits = 0  # how many times wait() blocked (stats)

    def wakeup_fd(self) -> int:
        """The descriptor ``signal.set_wakeup_fd`` should write to."""
        return self._wsock.fileno()

    def wait(self, timeout: float | None) -> list[Any]:
        """Block until an event, a wakeup or the timeout; drain the wakeups."""
        self.waits += 1
        events = self._selector.select(timeout)
        ready = []
        for key, mask in events:
            if key.fileobj is self._rsock:
                self._drain()
            else:
                ready.append((key, mask))
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

    def close(self) -> None:
        """Release the descriptors; calling it twice is harmless."""
        if self._selector is None:
            return
        self._selector.close()
        self._selector = None
        self._rsock.close()
        self._wsock.close()
