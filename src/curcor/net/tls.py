"""TLS over curcor sockets, through ``ssl.SSLObject`` and memory BIOs.

``TLSSocket`` speaks TLS over a connected ``Socket`` and offers the same
``recv``/``send``/``close`` a ``Stream`` needs, so ``Stream(TLSSocket(...))``
is a TLS stream. The handshake runs on first use (or ``await
do_handshake()``); a failed one raises ``TLSError`` naming the peer.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

from .socket import Socket

# Bytes pulled from the socket per read. Arbitrary; matches the streams.
PULL_SIZE = 64 * 1024
# Most ciphertext handed to the socket in one send (a copy of it is made).
SEND_CHUNK = 256 * 1024


class TLSError(ssl.SSLError):
    """The TLS handshake or session failed; the message names the peer."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class TLSSocket:
    """A TLS session over a connected ``Socket`` (client or server side).

    One task may read while another writes. Lock rule: ``_lock`` guards the
    ``SSLObject``, both memory BIOs and ``_pending``; it is never held
    across an await. ``_send_lock`` (a curcor Mutex) lets one task at a time
    send from ``_pending``.

    Cancellation: ciphertext is taken off ``_pending`` only as the socket
    accepts it, so a flush cancelled midway leaves the rest for the next
    one. ``send`` reports its plaintext as taken once it is encrypted and
    leaves its ciphertext pending (the next ``send``, ``flush`` or read
    sends it first); ``Stream.drain`` ends with ``flush``. A cancelled
    ``drain`` thus neither loses records nor encrypts the same bytes twice,
    which had corrupted the session.
    """

    def __init__(
        self,
        sock: Socket,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
    ) -> None:
        self.socket = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._in,
            self._out,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._lock = threading.Lock()
        self._pending = bytearray()  # ciphertext not yet accepted by the socket
        self._send_lock: Any = None  # a curcor Mutex, made on first use
        self._handshake_done = False
        self._handshake_lock: Any = None  # a curcor Mutex, made on first use
        self._peer = server_hostname

    # -- plumbing -----------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            return fn(*args)

    async def flush(self) -> None:
        """Send all pending ciphertext: what the TLS machine wrote to its
        outgoing BIO, and what an earlier cancelled flush left."""
        with self._lock:
            self._pending += self._out.read()
            if not self._pending:
                return
        if self._send_lock is None:
            from .._core.sync import Mutex

            self._send_lock = Mutex()
        async with self._send_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    chunk = bytes(self._pending[:SEND_CHUNK])
                sent = await self.socket.send(chunk)
                with self._lock:
                    del self._pending[:sent]

    async def _pull(self) -> None:
        """Feed the TLS machine what the peer sent (or its end of stream)."""
        data = await self.socket.recv(PULL_SIZE)
        with self._lock:
            if data:
                self._in.write(data)
            else:
                self._in.write_eof()

    def _where(self) -> str:
        try:
            return str(self.socket.getpeername())
        except OSError:
            return self._peer or "the peer"

    # -- the session ----------------------------------------------------------------

    async def do_handshake(self) -> None:
        """Run the TLS handshake (once; later calls return at once).

        Raises:
            TLSError: the handshake failed (bad certificate, wrong name,
                protocol mismatch, or the peer hung up).
        """
        if self._handshake_done:
            return
        if self._handshake_lock is None:
            from .._core.sync import Mutex

            self._handshake_lock = Mutex()
        async with self._handshake_lock:
            while not self._handshake_done:
                try:
                    self._call(self._obj.do_handshake)
                    self._handshake_done = True
                except ssl.SSLWantReadError:
                    await self.flush()
                    await self._pull()
                    continue
                except ssl.SSLError as exc:
                    await self._flush_quietly()
                    raise TLSError(
                        f"TLS handshake with {self._where()} failed: {exc}"
                    ) from exc
                await self.flush()

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except OSError:
            pass

    async def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` decrypted bytes; ``b""`` when the peer closed."""
        await self.do_handshake()
        while True:
            try:
                return self._call(self._obj.read, bufsize)
            except ssl.SSLWantReadError:
                await self.flush()
                await self._pull()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError as exc:
                raise TLSError(f"TLS session with {self._where()}: {exc}") from exc

    async def send(self, data: Any) -> int:
        """Encrypt ``data``; returns the bytes taken. Their ciphertext goes
        out with the next send or ``flush`` (see the class notes); what
        earlier sends left is sent first, so a slow peer holds ``send`` up."""
        await self.do_handshake()
        await self.flush()
        try:
            n = self._call(self._obj.write, data)
        except ssl.SSLError as exc:
            raise TLSError(f"TLS session with {self._where()}: {exc}") from exc
        with self._lock:
            self._pending += self._out.read()
        return int(n)

    async def sendall(self, data: Any) -> None:
        """Send all of ``data`` and wait until the socket has taken it."""
        view = memoryview(data).cast("B")
        while view:
            sent = await self.send(view)
            view = view[sent:]
        await self.flush()

    # -- what a Stream uses besides recv/send -----------------------------------

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self.socket.closed

    def close(self) -> None:
        """Close the connection (without a TLS close_notify)."""
        self.socket.close()

    def shutdown(self, how: int) -> None:
        """Half-close the TCP connection underneath (``socket.SHUT_WR``: send
        no more), without a TLS close_notify: what was sent before stays
        readable by the peer, which then sees the end of the stream. Used by
        the HTTP server to linger after an error response."""
        self.socket.shutdown(how)

    def getpeername(self) -> Any:
        """The remote address."""
        return self.socket.getpeername()

    def getsockname(self) -> Any:
        """The local address."""
        return self.socket.getsockname()

    def setsockopt(self, *args: Any) -> None:
        """``socket.setsockopt`` on the underlying socket."""
        self.socket.setsockopt(*args)

    @property
    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol agreed in the handshake, if any."""
        return self._obj.selected_alpn_protocol()

    def getpeercert(self) -> Any:
        """The peer's certificate (after the handshake)."""
        return self._obj.getpeercert()
