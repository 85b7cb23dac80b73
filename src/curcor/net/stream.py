"""Buffered byte streams over sockets, and TCP listen / dial / serve.

A ``Stream`` reads through a buffer (``read``, ``read_exactly``,
``read_until``) and writes through a bounded one: ``write`` never blocks,
``drain`` waits until everything written is sent, and ``write`` refuses to
buffer more than ``write_limit`` bytes (backpressure: await ``drain``).
"""

from __future__ import annotations

import errno
import socket as _socket
import ssl as _ssl
from typing import Any, Protocol

from .._core.errors import curcor_log
from .._core.group import TASK_STATUS_IGNORED, TaskGroup
from .._core.io import ClosedResourceError
from .socket import Socket, _checkpoint, getaddrinfo

# Bytes asked of the kernel per read. Arbitrary; no measurement yet.
READ_SIZE = 64 * 1024

# Most a stream buffers unsent before write() refuses more. Arbitrary.
WRITE_LIMIT = 1024 * 1024


def _pool() -> Any:
    from .._core.scheduler import current_worker

    w = current_worker()
    return w.sched.mempool if w is not None else None


class IncompleteReadError(EOFError):
    """The stream ended before ``read_exactly``/``read_until`` was satisfied.

    Attributes:
        partial: the bytes read before the end.
        expected: what was asked for: a byte count (``read_exactly``), or
            the separator's repr (``read_until``).
    """

    def __init__(self, partial: bytes, expected: Any) -> None:
        super().__init__(
            f"stream ended after {len(partial)} bytes; expected {expected}"
        )
        self.partial = partial
        self.expected = expected


class LimitOverrunError(ValueError):
    """``read_until`` found no separator within ``limit`` bytes."""


class WriteBufferFull(BufferError):
    """``write`` would buffer more than the stream's ``write_limit``."""


class ByteChannel(Protocol):
    """What a ``Stream`` reads and writes through: a ``Socket``, a
    ``TLSSocket`` or a process ``PipeEnd``."""

    @property
    def closed(self) -> bool: ...

    async def recv(self, bufsize: int) -> bytes: ...

    async def send(self, data: Any) -> int: ...

    def close(self) -> None: ...


def check_count(n: Any, what: str, minimum: int | None = 0) -> int:
    """``n`` as an int of at least ``minimum`` (None: any); else a clear
    ``TypeError`` or ``ValueError`` naming ``what``. The one check of byte
    counts, sizes and limits in ``curcor.net``."""
    if type(n) is not int and (isinstance(n, bool) or not isinstance(n, int)):
        raise TypeError(f"{what} takes an int, not {n!r}")
    if minimum is not None and n < minimum:
        raise ValueError(f"{what} must be {minimum} or more, not {n}")
    return int(n)


class Stream:
    """A buffered byte stream over a ``ByteChannel`` (socket, TLS, pipe).

    ``async with stream:`` sends what is buffered and closes it at the end.
    """

    def __init__(self, sock: ByteChannel, *, write_limit: int = WRITE_LIMIT) -> None:
        # Typed loosely: callers reach through to a Socket's extras
        # (shutdown, raw, getpeercert) when they know what they built.
        self.socket: Any = sock
        self.write_limit = check_count(write_limit, "Stream(write_limit=)")
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._eof = False

    # -- reading -----------------------------------------------------------------

    async def _fill(self) -> bool:
        """Read once more into the buffer; False at end of stream.

        Plain sockets read into a buffer lent by the runtime's pool
        (``mempool_size``) instead of a fresh ``bytes`` per read.
        """
        pool = _pool()
        recv_into = getattr(self.socket, "recv_into", None)
        if pool is None or recv_into is None:
            data = await self.socket.recv(READ_SIZE)
            if not data:
                self._eof = True
                return False
            self._rbuf += data
            return True
        buf = pool.get(READ_SIZE)
        try:
            n = await recv_into(buf, READ_SIZE)
            if not n:
                self._eof = True
                return False
            self._rbuf += memoryview(buf)[:n]
            return True
        finally:
            pool.put(buf)

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (any amount when ``n < 0``); ``b""`` at the end.

        Like every Stream operation, a checkpoint: in a cancelled scope it
        raises ``Cancelled`` even when bytes are already buffered.
        """
        if type(n) is not int:
            check_count(n, "Stream.read(n)", minimum=None)
        _checkpoint("Stream.read()")
        if n == 0:
            return b""  # as asyncio: consumes nothing, never waits
        if not self._rbuf and not self._eof:
            # Nothing buffered: hand the kernel's bytes over as they come,
            # with no copy through the buffer (the common echo/proxy case).
            data = await self.socket.recv(n if 0 < n < READ_SIZE else READ_SIZE)
            if not data:
                self._eof = True
            return data
        if n < 0 or n >= len(self._rbuf):
            data = bytes(self._rbuf)
            self._rbuf.clear()
            return data
        data = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return data

    def try_read(self) -> bytes | None:
        """What is buffered or arrived already, never waiting: bytes
        (``b""`` at the end), or None when a read would wait (then ``await
        read()``). Not a checkpoint."""
        if self._rbuf:
            data = bytes(self._rbuf)
            self._rbuf.clear()
            return data
        if self._eof:
            return b""
        try_recv = getattr(self.socket, "try_recv", None)
        if try_recv is None:
            return None
        data = try_recv(READ_SIZE)
        if data == b"":
            self._eof = True
        return data

    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes.

        Raises:
            IncompleteReadError: the stream ended first (``.partial`` holds
                what arrived).
        """
        check_count(n, "Stream.read_exactly(n)")
        _checkpoint("Stream.read_exactly()")
        while len(self._rbuf) < n:
            if self._eof or not await self._fill():
                partial = bytes(self._rbuf)
                self._rbuf.clear()
                raise IncompleteReadError(partial, n)
        data = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return data

    async def read_until(self, separator: bytes = b"\n", limit: int = 65536) -> bytes:
        """Bytes up to and including ``separator``.

        Raises:
            LimitOverrunError: no separator within ``limit`` bytes.
            IncompleteReadError: the stream ended first.
        """
        if not isinstance(separator, bytes | bytearray | memoryview):
            hint = ", e.g. b'\\n'" if type(separator) is str else ""
            raise TypeError(
                f"read_until() takes a bytes separator, not "
                f"{type(separator).__name__}{hint}"
            )
        separator = bytes(separator)
        if not separator:
            raise ValueError("read_until() needs a non-empty separator")
        check_count(limit, "Stream.read_until(limit=)", minimum=1)
        _checkpoint("Stream.read_until()")
        start = 0
        while True:
            at = self._rbuf.find(separator, start)
            if at >= 0:
                end = at + len(separator)
                if end > limit:
                    raise LimitOverrunError(
                        f"separator found after {end} bytes, over the limit of "
                        f"{limit}; raise limit= or read in pieces"
                    )
                data = bytes(self._rbuf[:end])
                del self._rbuf[:end]
                return data
            if len(self._rbuf) > limit:
                raise LimitOverrunError(
                    f"no separator in the first {limit} bytes; raise limit= or "
                    "read in pieces"
                )
            start = max(0, len(self._rbuf) - len(separator) + 1)
            if self._eof or not await self._fill():
                partial = bytes(self._rbuf)
                self._rbuf.clear()
                raise IncompleteReadError(partial, f"{separator!r}")

    # -- writing -----------------------------------------------------------------

    def write(self, data: Any) -> None:
        """Buffer ``data`` for sending; never blocks.

        Raises:
            WriteBufferFull: more than ``write_limit`` bytes would wait;
                ``await stream.drain()`` first.
            ClosedResourceError: the stream was closed.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            hint = "; encode it: write(text.encode())" if type(data) is str else ""
            raise TypeError(
                f"Stream.write() takes bytes, bytearray or memoryview, not "
                f"{type(data).__name__}{hint}"
            )
        if self.socket.closed:
            raise ClosedResourceError(
                errno.EBADF, "write() on a closed stream: the bytes would be lost"
            )
        if len(self._wbuf) + len(data) > self.write_limit and self._wbuf:
            raise WriteBufferFull(
                f"{len(self._wbuf)} bytes already wait to be sent (limit "
                f"{self.write_limit}); await stream.drain() before writing more"
            )
        self._wbuf += data

    async def drain(self) -> None:
        """Wait until everything written has been handed to the kernel."""
        _checkpoint("Stream.drain()")
        while self._wbuf:
            sent = await self.socket.send(self._wbuf)
            del self._wbuf[:sent]
        flush = getattr(self.socket, "flush", None)
        if flush is not None:  # TLS: send the ciphertext of what it took
            await flush()

    def try_drain(self) -> bool:
        """Send what the kernel takes now, without waiting; True if nothing
        is left buffered (callers then skip arming a timeout for ``drain``)."""
        try_send = getattr(self.socket, "try_send", None)
        if try_send is None:
            return not self._wbuf
        while self._wbuf:
            sent = try_send(self._wbuf)
            if not sent:
                return False
            del self._wbuf[:sent]
        return True

    @property
    def buffered(self) -> int:
        """Bytes written and not yet sent."""
        return len(self._wbuf)

    # -- closing -----------------------------------------------------------------

    def close(self) -> None:
        """Close now; anything not yet drained is dropped."""
        self._wbuf.clear()
        self.socket.close()

    async def aclose(self) -> None:
        """Send what is buffered, then close."""
        try:
            if not self.socket.closed:
                await self.drain()
        finally:
            self.socket.close()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class Listener:
    """A listening socket: ``await listener.accept()`` gives a ``Stream``.

    With ``ssl`` (a server ``SSLContext``) each stream speaks TLS; its
    handshake runs on first use, in the task that handles the connection.
    """

    def __init__(self, sock: Socket, ssl: Any = None) -> None:
        self.socket = sock
        self.ssl = ssl
        self._warned = False  # accept_retrying logged its back-off once

    @property
    def port(self) -> int:
        """The TCP port it listens on (useful after binding port 0).

        Raises:
            ClosedResourceError: the listener was closed (read the port
                before closing it).
        """
        if self.socket.closed:
            raise ClosedResourceError(
                errno.EBADF, "Listener.port after close(); read it before closing"
            )
        address = self.socket.getsockname()
        if not isinstance(address, tuple):
            raise TypeError(
                f"Listener.port is for TCP listeners; this one listens on the "
                f"Unix socket {address!r}"
            )
        return int(address[1])

    async def accept(self) -> Stream:
        """The next connection, as a ``Stream``."""
        conn, _addr = await self.socket.accept()
        if conn.raw.family in (_socket.AF_INET, _socket.AF_INET6):
            conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if self.ssl is None:
            return Stream(conn)
        from .tls import TLSSocket

        return Stream(TLSSocket(conn, self.ssl, server_side=True))

    async def accept_retrying(self) -> Stream:
        """``accept``, waiting out EMFILE/ENFILE/ENOBUFS: a server that runs
        out of descriptors logs it once, backs off ``ACCEPT_BACKOFF`` seconds
        at a time, and accepts again once descriptors free up."""
        from .._core.clock import sleep

        while True:
            try:
                return await self.accept()
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
                    raise
                if not self._warned:
                    curcor_log().warning(
                        "accept on %s: %s; backing off until descriptors free up",
                        self._where(),
                        exc,
                    )
                    self._warned = True
                await sleep(ACCEPT_BACKOFF)

    def _where(self) -> Any:
        name = self.socket.getsockname()
        return name if isinstance(name, str) else f"port {name[1]}"

    def close(self) -> None:
        """Stop listening."""
        self.socket.close()

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def listen_tcp(
    host: str = "127.0.0.1", port: int = 0, *, backlog: int = 128, ssl: Any = None
) -> Listener:
    """Listen on ``host:port`` (port 0 picks a free one; see ``.port``).

    ``ssl``: a server ``ssl.SSLContext`` to accept TLS connections.
    """
    infos = await getaddrinfo(
        host, port, type=_socket.SOCK_STREAM, flags=_socket.AI_PASSIVE
    )
    family, kind, proto, _, addr = infos[0]
    raw = _socket.socket(family, kind, proto)
    try:
        raw.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        raw.bind(addr)
        raw.listen(backlog)
    except BaseException:
        raw.close()
        raise
    return Listener(Socket(raw), ssl)


async def dial_tcp(
    host: str, port: int, *, ssl: Any = None, server_hostname: str | None = None
) -> Stream:
    """Connect to ``host:port`` (names resolved off the workers).

    ``ssl``: True for the default client context, or an ``ssl.SSLContext``;
    the TLS handshake completes before this returns, checking the server's
    certificate against ``server_hostname`` (default: ``host``).

    Raises:
        OSError: every address the name resolved to refused or failed.
        TLSError: the TLS handshake failed.
    """
    infos = await getaddrinfo(host, port, type=_socket.SOCK_STREAM)
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = Socket(_socket.socket(family, kind, proto))
        try:
            await sock.connect(addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if ssl is None or ssl is False:
            return Stream(sock)
        return await _tls_client(sock, ssl, server_hostname or host)
    # The last address's own errno (so its class too: ConnectionRefusedError
    # for a closed port, plain OSError for an unreachable network).
    code = last.errno if last is not None and last.errno else errno.ECONNREFUSED
    raise OSError(code, f"could not connect to {host}:{port}: {last}") from last


async def _tls_client(sock: Socket, ssl: Any, hostname: str) -> Stream:
    import ssl as _ssl

    from .tls import TLSSocket

    context = _ssl.create_default_context() if ssl is True else ssl
    tls = TLSSocket(sock, context, server_hostname=hostname)
    try:
        await tls.do_handshake()
    except BaseException:
        sock.close()
        raise
    return Stream(tls)


async def listen_unix(path: str, *, backlog: int = 128) -> Listener:
    """Listen on the Unix socket ``path`` (which must not exist yet)."""
    _check_unix_path(path)
    raw = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        raw.bind(path)
        raw.listen(backlog)
    except BaseException:
        raw.close()
        raise
    return Listener(Socket(raw))


# Longest Unix socket path Linux takes (sun_path is 108 bytes with the NUL).
UNIX_PATH_MAX = 107


def _check_unix_path(path: Any) -> None:
    """A clear error for a path the kernel would refuse as too long."""
    import os

    size = len(os.fsencode(path))
    if size > UNIX_PATH_MAX:
        raise ValueError(
            f"the Unix socket path {path!r} is {size} bytes; the limit is "
            f"{UNIX_PATH_MAX}: use a shorter one, e.g. under /tmp"
        )


async def dial_unix(path: str) -> Stream:
    """Connect to the Unix socket ``path``."""
    _check_unix_path(path)
    sock = Socket(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM))
    try:
        await sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return Stream(sock)


# Seconds an accept loop waits after EMFILE/ENFILE before trying again.
ACCEPT_BACKOFF = 0.1

# Seconds a TLS client of serve_tcp/serve_unix gets to finish its handshake
# before the connection is dropped (the handler cannot bound it: it runs
# after). asyncio's default ssl_handshake_timeout.
TLS_HANDSHAKE_TIMEOUT = 60.0


async def serve_tcp(
    handler: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = 128,
    ssl: Any = None,
    task_status: Any = TASK_STATUS_IGNORED,
) -> None:
    """Serve TCP: run ``await handler(stream)`` in its own task per connection.

    Reports the bound port through ``task_status.started(port)``, so
    ``port = await tg.start(serve_tcp, handler)`` works. Runs until
    cancelled; each stream is closed when its handler returns. When the
    process runs out of descriptors (EMFILE/ENFILE) it logs once, waits a
    little and keeps serving. With ``ssl`` (a server context) connections
    speak TLS; a client whose handshake fails, or has not finished within
    ``TLS_HANDSHAKE_TIMEOUT`` (60 s), is logged and dropped.
    """
    listener = await listen_tcp(host, port, backlog=backlog, ssl=ssl)
    await _serve(listener, handler, listener.port, task_status)


async def serve_unix(
    handler: Any,
    path: str,
    *,
    backlog: int = 128,
    task_status: Any = TASK_STATUS_IGNORED,
) -> None:
    """Serve the Unix socket ``path`` as ``serve_tcp`` serves a port.

    Reports ``path`` through ``task_status.started(path)``.
    """
    listener = await listen_unix(path, backlog=backlog)
    await _serve(listener, handler, path, task_status)


async def _serve(
    listener: Listener, handler: Any, where: Any, task_status: Any
) -> None:
    """The accept loop shared by serve_tcp and serve_unix."""
    async with TaskGroup() as tg:
        try:
            task_status.started(where)
            while True:
                stream = await listener.accept_retrying()
                tg.go(_serve_one(handler, stream))
        finally:
            listener.close()


async def _serve_one(handler: Any, stream: Stream) -> None:
    try:
        if hasattr(stream.socket, "do_handshake"):
            from .._core.cancel import move_on_after
            from .tls import TLSError

            try:
                with move_on_after(TLS_HANDSHAKE_TIMEOUT) as scope:
                    await stream.socket.do_handshake()
            except (TLSError, OSError) as exc:
                curcor_log().info("dropped a connection: %s", exc)
                return
            if scope.cancelled_caught:
                curcor_log().info(
                    "dropped a connection: no TLS handshake within %g s",
                    TLS_HANDSHAKE_TIMEOUT,
                )
                return
        await handler(stream)
    except (ConnectionError, ClosedResourceError, _ssl.SSLError) as exc:
        # The peer reset, vanished or broke TLS: that ends this connection,
        # not the server. Other errors in a handler are bugs and propagate.
        curcor_log().debug("connection ended: %s", exc)
    finally:
        stream.close()
