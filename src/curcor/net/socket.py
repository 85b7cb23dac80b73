"""Non-blocking sockets whose operations are awaited: ``curcor.net.Socket``.

Every operation first tries the system call; only when it would block does
the task park on the poller (``_core/io.py``) until the descriptor is ready.
Each operation is a checkpoint: in a cancelled scope it raises ``Cancelled``
even when data is already there. Closing a socket that another task waits
on wakes that task with ``ClosedResourceError``.
"""

from __future__ import annotations

import errno
import socket as _socket
from typing import Any

from .._core.errors import Cancelled
from .._core.io import (
    ClosedResourceError,
    notify_closing,
    retry_readable,
    retry_writable,
)
from .._core.traps import worker_and_task, yield_now


def _checkpoint(what: str) -> None:
    task = worker_and_task(what)[1]
    if task._cancel_pending:
        raise Cancelled()


def _io_checkpoint(what: str) -> bool:
    """A checkpoint that also spends the worker's I/O budget; True when it is
    spent and the caller must ``await yield_now()`` before its operation
    (see ``IO_BUDGET`` in the scheduler)."""
    w, task = worker_and_task(what)
    if task._cancel_pending:
        raise Cancelled()
    return w.spend_io()


class Socket:
    """An awaitable wrapper over a standard ``socket.socket`` (non-blocking).

    ``Socket(sock)`` takes ownership: the socket is switched to non-blocking
    mode and closed by ``close()``.
    """

    __slots__ = ("_closed", "_fd", "_sock")

    def __init__(self, sock: _socket.socket) -> None:
        if not isinstance(sock, _socket.socket):
            raise TypeError(
                f"curcor.net.Socket wraps a socket.socket, not {type(sock).__name__}"
            )
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._closed = False

    # -- plain accessors --------------------------------------------------------

    @property
    def raw(self) -> _socket.socket:
        """The underlying ``socket.socket`` (non-blocking)."""
        return self._sock

    def fileno(self) -> int:
        """The descriptor (-1 once closed)."""
        return -1 if self._closed else self._fd

    def getsockname(self) -> Any:
        """The local address."""
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        """The remote address."""
        return self._sock.getpeername()

    def setsockopt(self, *args: Any) -> None:
        """``socket.setsockopt``."""
        self._sock.setsockopt(*args)

    def shutdown(self, how: int) -> None:
        """Half-close: ``socket.SHUT_WR`` ends what this side sends."""
        self._sock.shutdown(how)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError(errno.EBADF, "the socket is closed")

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Close now: tasks waiting on it get ``ClosedResourceError``.

        The descriptor is unregistered from the poller before it is closed.
        Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        notify_closing(self._fd)
        self._sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<curcor.net.Socket {state}>"

    # -- the operations -------------------------------------------------------------

    async def accept(self) -> tuple[Socket, Any]:
        """Accept a connection: ``(Socket, address)``.

        Raises:
            OSError: e.g. EMFILE when the process is out of descriptors.
        """
        if _io_checkpoint("Socket.accept()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                await retry_readable(self._fd, self)
                continue
            return Socket(conn), addr

    async def connect(self, address: Any) -> None:
        """Connect to ``address`` (an IP address; see ``dial_tcp`` for names).

        Raises:
            OSError: the connection was refused, timed out or failed.
        """
        if _io_checkpoint("Socket.connect()"):
            await yield_now()
        self._check_open()
        try:
            self._sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        await retry_writable(self._fd, self)
        err = self._sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err:
            raise OSError(err, f"connect to {address!r} failed: {_strerror(err)}")

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive up to ``bufsize`` bytes; ``b""`` at end of stream."""
        if _io_checkpoint("Socket.recv()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return self._sock.recv(bufsize, flags)
            except (BlockingIOError, InterruptedError):
                await retry_readable(self._fd, self)

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive into ``buffer``; the byte count (0 at end of stream)."""
        if _io_checkpoint("Socket.recv_into()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return self._sock.recv_into(buffer, nbytes, flags)
            except (BlockingIOError, InterruptedError):
                await retry_readable(self._fd, self)

    async def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        """Receive a datagram: ``(data, address)``."""
        if _io_checkpoint("Socket.recvfrom()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return self._sock.recvfrom(bufsize, flags)
            except (BlockingIOError, InterruptedError):
                await retry_readable(self._fd, self)

    async def send(self, data: Any, flags: int = 0) -> int:
        """Send some of ``data``; the number of bytes sent."""
        if _io_checkpoint("Socket.send()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return self._sock.send(data, flags)
            except (BlockingIOError, InterruptedError):
                await retry_writable(self._fd, self)

    def try_recv(self, bufsize: int) -> bytes | None:
        """Receive what is there now, never waiting: bytes (``b""`` at the
        end of the stream), or None when a read would wait, or when the
        worker's I/O budget is spent (then ``await recv()``, which yields).

        Not a checkpoint (it never suspends).

        Raises:
            ClosedResourceError: the socket is closed.
        """
        self._check_open()
        if worker_and_task("Socket.try_recv()")[0].spend_io():
            return None
        try:
            return self._sock.recv(bufsize)
        except (BlockingIOError, InterruptedError):
            return None

    def try_send(self, data: Any) -> int:
        """Send what the kernel takes now, never waiting; 0 if it would wait.

        Not a checkpoint (it never suspends).

        Raises:
            ClosedResourceError: the socket is closed.
        """
        self._check_open()
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    async def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``, waiting for room as needed."""
        if _io_checkpoint("Socket.sendall()"):
            await yield_now()
        view = memoryview(data).cast("B")
        while view:
            self._check_open()
            try:
                sent = self._sock.send(view, flags)
            except (BlockingIOError, InterruptedError):
                await retry_writable(self._fd, self)
                continue
            view = view[sent:]

    async def sendto(self, data: Any, address: Any) -> int:
        """Send a datagram to ``address``."""
        if _io_checkpoint("Socket.sendto()"):
            await yield_now()
        while True:
            self._check_open()
            try:
                return self._sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                await retry_writable(self._fd, self)


def _strerror(err: int) -> str:
    import os

    return os.strerror(err)


def socket(
    family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0
) -> Socket:
    """A new non-blocking ``Socket`` (arguments as ``socket.socket``)."""
    return Socket(_socket.socket(family, type, proto))


def check_port(port: Any) -> None:
    """Refuse a port number outside 0-65535 with a clear error.

    Raises:
        ValueError: out of range (or a numeric string out of range).
        TypeError: not an int, str or None.
    """
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise TypeError(f"port must be an int from 0 to 65535, not {port!r}")
    if isinstance(port, str):
        if not port.strip().isdigit():
            return  # a service name ("http"): the resolver checks it
        port = int(port)
    if not 0 <= port <= 65535:
        raise ValueError(
            f"port {port} is out of range: use 0 to 65535 (0 picks a free port)"
        )


async def getaddrinfo(
    host: str | None, port: Any, family: int = 0, type: int = 0, flags: int = 0
) -> list[Any]:
    """``socket.getaddrinfo`` on the thread pool: never blocks a worker.

    Raises:
        ValueError: a numeric ``port`` outside 0-65535 (the C library would
            wrap it silently: 70000 would mean 4464).
        TypeError: ``port`` is neither an int, a str nor None.
    """
    from .._core.threads import to_thread

    check_port(port)

    infos: list[Any] = await to_thread(
        _socket.getaddrinfo, host, port, family, type, 0, flags
    )
    return infos
