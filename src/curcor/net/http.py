"""HTTP/1.1 server and client on curcor streams, with h11 as the parser.

``port = await tg.start(serve_http, app)`` serves ``async def app(request)
-> Response``; ``async with Client(base_url=url) as c: r = await c.get("/")``
talks to any HTTP/1.1 server. h11 parses and frames the messages; this
module does the I/O, the limits, the timeouts and the connection reuse.
Both sides speak HTTPS too, over the TLS streams of ``curcor.net``:
``serve_http(app, ssl=context)`` and ``https://`` URLs in the client.

Terms
-----
connection: one TCP stream and the h11 state machine that frames it.
cycle: one request and its response; keep-alive runs many on a connection.
idle: a server connection waiting for the first byte of its next request.
in flight: a server connection from that first byte to the end of its
response.

Limits and timeouts (server)
----------------------------
A slow or hostile client can hold neither a task nor memory for long:

- Head: on a new connection the whole request head must arrive within
  ``header_timeout`` of the accept; on a kept-alive one the first byte must
  come within ``idle_timeout``, then the rest within ``header_timeout``. A
  head over ``max_header_bytes`` gets 431; h11 stops buffering there.
- Body: a Content-Length over ``max_body_bytes`` gets 413 before the app
  runs; any other body is counted while it is read and the read raises
  ``BodyTooLarge`` (413) where it passes the limit. Each read of a body and
  each write of a response must make progress within ``idle_timeout``.
- A request h11 cannot parse gets 400; an exception from the app gets 500
  and a log record on ``curcor.http``. Every error response is followed by
  a close. When the client may still be sending (a body, or a head that
  ran out of time) we stop writing and read off what it sends for up to
  ``LINGER`` seconds first, so that its kernel does not reset the
  connection before it has read the response.

Shutdown (server)
-----------------
Connection tasks run in a shielded scope of their own, so cancelling the
scope ``serve_http`` runs in does not reach them directly. Instead:

1. the accept loop ends and the listener closes: new connections are
   refused;
2. idle connections are cancelled and close at once;
3. a request in flight runs to the end of its response, sent with
   ``Connection: close``, for up to ``shutdown_grace`` seconds;
4. whatever still runs then is cancelled, and ``serve_http`` raises
   ``Cancelled`` on to the scope that was cancelled.

Connection reuse (client)
-------------------------
A ``Client`` keeps, per (scheme, host, port), up to ``max_idle_per_host`` idle
kept-alive connections. A request takes the newest one whose socket shows
nothing to read (a non-blocking peek: a server that closed it shows EOF) or
dials a new one; a response read to its end gives its connection back. A
server may still close an idle connection just as a request goes out on it
(the race every keep-alive client has): when a reused connection fails
before any byte of the response came back, an idempotent request with a
replayable body is sent once more, on a new connection.

Sharing: each connection is used by one task at a time. The server's set
of connections and the client's pool are shared by tasks on different
worker threads; their lock rules are written beside them.
"""

from __future__ import annotations

import errno
import json as _json
import logging
import re
import socket as _socket
import ssl as _ssl
import threading
import time
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

try:
    import h11
except ImportError as exc:  # pragma: no cover - the http extra is missing
    raise ImportError(
        "curcor.net.http needs h11; install it with: pip install 'curcor[http]'"
    ) from exc

from .._core.cancel import CancelScope, move_on_after, timeout
from .._core.errors import check_seconds
from .._core.group import TASK_STATUS_IGNORED, TaskGroup
from .._core.runtime import now
from .._core.scheduler import current_worker
from .._core.sync import Event
from .._core.traps import yield_now
from .stream import Listener, Stream, check_count, dial_tcp, listen_tcp
from .tls import TLSError, TLSSocket

__all__ = [
    "BodyTooLarge",
    "Client",
    "ClientResponse",
    "HTTPError",
    "Headers",
    "ProtocolError",
    "Request",
    "Response",
    "health_handler",
    "serve_http",
]

_log = logging.getLogger("curcor.http")

# Seconds a server keeps reading off (and dropping) a request body it will
# not use before it closes, so the client reads the error response before
# its kernel sees a reset. Go's server waits 500 ms for the same reason.
LINGER = 0.5

# Client defaults. Arbitrary; no measurement yet.
CLIENT_TIMEOUT = 30.0
CLIENT_MAX_IDLE_PER_HOST = 4
CLIENT_MAX_BODY_BYTES = 16 * 1024 * 1024
CLIENT_MAX_HEADER_BYTES = 64 * 1024

SERVER_NAME = b"curcor"
USER_AGENT = "curcor-http"

# Methods a client may send twice without changing the outcome (RFC 9110 9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

# Responses that never carry a body, whatever their headers say.
_NO_BODY_STATUS = frozenset({204, 304})

# The client's states in which it sends nothing more (no linger needed).
_THEIR_END = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)

# Response fields the server frames itself for a bytes body (see _frame).
_FRAMED_FIELDS = frozenset({"content-length", "transfer-encoding", "connection"})
# RFC 9110 5.1 and 5.5: a field name is a token; a value has no control
# characters (tab aside) and no whitespace at either end.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(
    r"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)


# -- errors -------------------------------------------------------------------


class HTTPError(Exception):
    """Base of this module's errors.

    Attributes:
        status: on the server, the status sent back when the error escapes
            the app (400, 408, 413, 431); None on the client.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProtocolError(HTTPError):
    """The peer broke HTTP/1.1, stalled, or closed in the middle of a message."""


class BodyTooLarge(HTTPError):
    """A body passed its limit (``max_body_bytes`` of the server or client)."""


class _Stale(Exception):
    """A reused client connection failed before any byte of the response."""


# -- headers ------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    raise TypeError(f"header {what} must be str or bytes, not {type(value).__name__}")


class Headers:
    """Header fields in order, looked up case-insensitively; names may repeat.

    ``Headers({"content-type": "text/plain"})`` or ``Headers([("a", "1"),
    ("a", "2")])``. ``get`` and ``[]`` join repeated fields with ", " (as
    RFC 9110 5.3 combines them); ``get_all`` gives them one by one.
    """

    __slots__ = ("_items",)

    def __init__(self, fields: Any = None) -> None:
        pairs: Any
        if fields is None:
            pairs = ()
        elif isinstance(fields, Headers):
            pairs = fields._items
        elif hasattr(fields, "items"):
            pairs = fields.items()
        else:
            pairs = fields
        self._items: list[tuple[str, str]] = [
            (_text(name, "name"), _text(value, "value")) for name, value in pairs
        ]

    @classmethod
    def _from_h11(cls, fields: Any) -> Headers:
        headers = cls.__new__(cls)
        headers._items = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in fields
        ]
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field's value (repeats joined with ", "), or ``default``."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of the field, in order (empty when it is absent)."""
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping those of the same name."""
        self._items.append((_text(name, "name"), _text(value, "value")))

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        """Drop every field of this name."""
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def items(self) -> list[tuple[str, str]]:
        """The (name, value) pairs in order, repeats included."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n.lower() == key for n, _ in self._items)

    def __iter__(self) -> Any:
        return iter([n for n, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def _encoded(self) -> list[tuple[bytes, bytes]]:
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]


# -- what an app sees and returns -----------------------------------------------


class Request:
    """One request as the app sees it; the body is read on demand.

    Attributes:
        method: "GET", "POST", ...
        target: the request target as sent ("/a%20b?x=1").
        path: its path, percent-decoded ("/a b").
        query: its query string, undecoded ("x=1"; "" when absent).
        headers: a ``Headers``.
        http_version: "1.1" or "1.0".
        client: the peer's address, ``(host, port)``.
    """

    __slots__ = (
        "_body",
        "_conn",
        "_received",
        "_started",
        "client",
        "headers",
        "http_version",
        "method",
        "path",
        "query",
        "target",
    )

    def __init__(self, conn: _ServerConn, event: h11.Request, headers: Headers) -> None:
        self._conn = conn
        self._body: bytes | None = None
        self._received = 0  # body bytes so far, against max_body_bytes
        self._started = False
        self.method = event.method.decode("ascii")
        self.target = event.target.decode("latin-1")
        self.http_version = event.http_version.decode("ascii")
        self.headers = headers
        self.client = conn.peer
        raw_path, query = _split_target(self.target)
        self.path = urllib.parse.unquote(raw_path)
        self.query = query

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        return self.headers.get(name)

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The query string decoded: ``{"x": ["1"]}``."""
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    async def body(self) -> bytes:
        """The whole body (read once, then kept).

        Raises:
            BodyTooLarge: it passed the server's ``max_body_bytes`` (413 when
                it escapes the app).
            ProtocolError: the client stalled, broke the framing or closed.
        """
        if self._body is None:
            data = bytearray()
            async for chunk in self.stream():
                data += chunk
            self._body = bytes(data)
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk as it arrives: ``async for c in r.stream()``.

        Raises:
            RuntimeError: the body was already read.
            BodyTooLarge, ProtocolError: as for ``body()``.
        """
        if self._started:
            raise RuntimeError(
                "the request body can be read only once; keep what body() "
                "returns instead of reading it again"
            )
        self._started = True
        async for chunk in self._conn._body_chunks(self):
            yield chunk

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} from {self.client}>"


App = Callable[[Request], Awaitable["Response"]]


class Response:
    """What an app returns: ``Response(200, {"x": "y"}, "hello")``.

    ``body`` is bytes, str (sent as UTF-8, ``text/plain`` unless a
    Content-Type is given) or an async iterable of bytes/str chunks, which
    is sent chunked (or to the close, to an HTTP/1.0 client). A bytes body
    gets its Content-Length.

    Raises:
        ValueError: status outside 200-599.
        TypeError: a body of another type.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int = 200, headers: Any = None, body: Any = b"") -> None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"status must be an int, not {status!r}")
        if not 200 <= status <= 599:
            raise ValueError(f"status must be 200-599 for a response, not {status}")
        self.status = status
        self.headers = Headers(headers)
        if isinstance(body, str):
            if "content-type" not in self.headers:
                self.headers.add("content-type", "text/plain; charset=utf-8")
            body = body.encode("utf-8")
        elif isinstance(body, bytearray | memoryview):
            body = bytes(body)
        elif not isinstance(body, bytes) and not isinstance(body, AsyncIterable):
            raise TypeError(
                "a Response body is bytes, str or an async iterable of chunks, "
                f"not {type(body).__name__}"
            )
        self.body: bytes | AsyncIterable[Any] = body

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: Any = None) -> Response:
        """A JSON response: ``Response.json({"ok": True})``.

        Raises:
            TypeError: ``obj`` is not JSON-serialisable.
        """
        response = cls(status, headers, _json.dumps(obj).encode("utf-8"))
        response.headers.set("content-type", "application/json")
        return response

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def health_handler(version: str, weight: int = 100) -> App:
    """The ``/v1/health`` handler every curcor service mounts.

    It answers GET and HEAD with ``{"status": "ok", "version": version,
    "weight": weight}`` as JSON, and 405 to other methods. ``weight`` is the
    node's vote in version arbitration (docs: discovery).

    Raises:
        TypeError: version is not a str, or weight not an int.
        ValueError: weight is negative.
    """
    if not isinstance(version, str):
        raise TypeError(f"version must be a str, not {type(version).__name__}")
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise TypeError(f"weight must be an int, not {weight!r}")
    if weight < 0:
        raise ValueError(f"weight must be 0 or more, not {weight}")
    payload = {"status": "ok", "version": version, "weight": weight}
    body = _json.dumps(payload).encode("utf-8")

    async def health(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, {"allow": "GET, HEAD"}, "use GET\n")
        headers = {"content-type": "application/json", "cache-control": "no-store"}
        return Response(200, headers, body)

    return health


def _split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target in origin or absolute form."""
    if not target.startswith("/") and "://" in target:
        parts = urllib.parse.urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path, query


# The Date header, rebuilt once a second. Two workers may rebuild it at the
# same time; both write an equal immutable tuple, so no lock is needed.
_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode("ascii"))
    return _date_cache[1]


class _Head:
    """What the server needs from a request head, read in one pass over h11's
    fields (each pass over them costs a Python call per field)."""

    __slots__ = ("chunked", "close", "headers", "length", "size")

    def __init__(self, event: h11.Request) -> None:
        self.size = len(event.target)  # against max_header_bytes
        self.length: int | None = None  # Content-Length, if sent
        self.chunked = False  # Transfer-Encoding sent (h11 allows chunked only)
        # The connection closes after this cycle: HTTP/1.0, "close", or a
        # request to switch protocols (Upgrade, CONNECT), which this server
        # does not do: h11 then waits for a switch that never comes.
        self.close = event.http_version != b"1.1" or event.method == b"CONNECT"
        items = []
        for name, value in event.headers:
            self.size += len(name) + len(value) + 4
            if name == b"content-length":
                self.length = int(value)  # h11 has checked it is digits
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"upgrade" or (
                name == b"connection" and b"close" in value.lower()
            ):
                self.close = True
            items.append((name.decode("latin-1"), value.decode("latin-1")))
        self.headers = Headers.__new__(Headers)
        self.headers._items = items

    @property
    def body_follows(self) -> bool:
        """True when a body may follow the head."""
        return self.chunked or bool(self.length)


# -- the server ---------------------------------------------------------------------


async def serve_http(
    app: App,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: _ssl.SSLContext | None = None,
    task_status: Any = TASK_STATUS_IGNORED,
    max_header_bytes: int = 16384,
    max_body_bytes: int = 1_048_576,
    header_timeout: float = 10.0,
    idle_timeout: float = 30.0,
    shutdown_grace: float = 5.0,
    backlog: int = 128,
) -> None:
    """Serve HTTP/1.1: ``await app(request)`` for each request, until cancelled.

    Reports the bound port through ``task_status``, so ``port = await
    tg.start(functools.partial(serve_http, app, port=8080))`` works. The
    limits and timeouts, and what cancelling does (a graceful shutdown),
    are described at the top of this module.

    With ``ssl`` (a server ``ssl.SSLContext`` holding the certificate) it
    serves HTTPS. Each connection's TLS handshake runs in its own task and
    must end within ``header_timeout``, as the request head must; a client
    whose handshake fails (one that speaks plain HTTP, or distrusts the
    certificate) is closed without a response and the server goes on.

    Raises:
        TypeError: ``app`` is not an async function, or ``ssl`` is not an
            ``ssl.SSLContext``.
        ValueError: a negative timeout, or a client-side ``ssl`` context.
        OSError: the address could not be bound.
    """
    _check_server_context(ssl)
    if not callable(app):
        raise TypeError(
            f"serve_http() takes an app, `async def app(request) -> Response`, "
            f"not {type(app).__name__}"
        )
    for name, value in (
        ("header_timeout", header_timeout),
        ("idle_timeout", idle_timeout),
        ("shutdown_grace", shutdown_grace),
    ):
        _check_seconds("serve_http", name, value)
    for name, value in (
        ("max_header_bytes", max_header_bytes),
        ("max_body_bytes", max_body_bytes),
        ("backlog", backlog),
    ):
        check_count(value, f"serve_http: {name}", 1)
    server = _Server(
        app,
        max_header_bytes=max_header_bytes,
        max_body_bytes=max_body_bytes,
        header_timeout=header_timeout,
        idle_timeout=idle_timeout,
        shutdown_grace=shutdown_grace,
    )
    listener = await listen_tcp(host, port, backlog=backlog, ssl=ssl)
    try:
        async with TaskGroup() as tg:
            task_status.started(listener.port)
            try:
                await server.accept_loop(listener, tg)
            finally:
                listener.close()
                with CancelScope(shield=True):
                    await server.shutdown()
    finally:
        listener.close()


def _check_server_context(context: Any) -> None:
    """Refuse an ``ssl`` argument ``serve_http`` cannot serve with."""
    if context is None:
        return
    if not isinstance(context, _ssl.SSLContext):
        raise TypeError(
            "serve_http(ssl=...) takes an ssl.SSLContext with the server's "
            f"certificate, not {type(context).__name__}"
        )
    if context.protocol == _ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "serve_http(ssl=...) needs a server context: make it with "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) and "
            "ctx.load_cert_chain(certfile, keyfile)"
        )


class _Server:
    """The shared state of one ``serve_http``: settings and live connections."""

    def __init__(
        self,
        app: App,
        *,
        max_header_bytes: int,
        max_body_bytes: int,
        header_timeout: float,
        idle_timeout: float,
        shutdown_grace: float,
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.shutdown_grace = shutdown_grace
        # Lock rule: _conns, closing and every connection's `idle` are
        # guarded by _lock. Scopes are cancelled and the event set after it
        # is released.
        self._lock = threading.Lock()
        self._conns: set[_ServerConn] = set()
        self.closing = False
        self._all_gone = Event()

    async def accept_loop(self, listener: Listener, tg: TaskGroup) -> None:
        """Accept connections and start a task for each, until cancelled
        (running out of descriptors backs off: ``Listener.accept_retrying``)."""
        while True:
            stream = await listener.accept_retrying()
            conn = _ServerConn(self, stream)
            with self._lock:
                self._conns.add(conn)
            tg.go(conn.serve(), name=f"http {conn.peer[0]}:{conn.peer[1]}")

    def set_idle(self, conn: _ServerConn, idle: bool) -> bool:
        """Mark ``conn`` idle or busy; False when it may not idle (closing)."""
        with self._lock:
            if idle and self.closing:
                return False
            conn.idle = idle
            return True

    def forget(self, conn: _ServerConn) -> None:
        """``conn`` has closed."""
        with self._lock:
            self._conns.discard(conn)
            last = self.closing and not self._conns
        if last:
            self._all_gone.set()

    async def shutdown(self) -> None:
        """Close idle connections, give busy ones the grace, then cancel them.

        Called in a shielded scope, after the listener closed.
        """
        with self._lock:
            self.closing = True
            idle = [c for c in self._conns if c.idle]
            empty = not self._conns
        for conn in idle:
            conn.scope.cancel()
        if not empty:
            with move_on_after(self.shutdown_grace):
                await self._all_gone.wait()
        with self._lock:
            rest = list(self._conns)
        for conn in rest:
            conn.scope.cancel()


class _ServerConn:
    """One accepted connection, served by its own task (``serve``)."""

    def __init__(self, server: _Server, stream: Stream) -> None:
        self.server = server
        self.stream = stream
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=server.max_header_bytes
        )
        try:
            self.peer: tuple[Any, ...] = tuple(stream.socket.getpeername())
        except OSError:
            self.peer = ("?", 0)
        # Shielded: the server's cancellation reaches a connection only
        # through this scope (see "Shutdown" above).
        self.scope = CancelScope(shield=True)
        self.idle = True  # guarded by the server's lock; new counts as idle

    async def serve(self) -> None:
        """Serve requests until the client leaves, a limit trips or shutdown."""
        try:
            with self.scope:
                await self._cycles()
        except OSError:
            pass  # the client went away; nothing to tell it
        except Exception:
            _log.exception("http connection from %s failed", self.peer)
        finally:
            self.stream.close()
            self.server.forget(self)

    async def _cycles(self) -> None:
        first = True
        while True:
            event = await self._read_head(first)
            if event is None:
                return
            first = False
            if not await self._respond(event):
                return
            self._next_cycle()

    def _next_cycle(self) -> None:
        """Ready the state machine for the next request on this connection.

        A response framed by ``_frame`` bypassed h11's sending side, so h11
        still waits to send it: a fresh state machine takes over, fed what
        the client already sent beyond the last request.
        """
        h = self.h11
        if h.our_state is h11.DONE:
            h.start_next_cycle()
            return
        data, closed = h.trailing_data
        fresh = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.server.max_header_bytes
        )
        if data:
            fresh.receive_data(bytes(data))
        if closed:
            fresh.receive_data(b"")
        self.h11 = fresh

    # -- reading --------------------------------------------------------------

    async def _read_head(self, first: bool) -> h11.Request | None:
        """The next request's head, or None when the connection should close."""
        server, h = self.server, self.h11
        started = now()

        # Idle: wait for the first byte, unless the last read brought some
        # or it is there already (no timeout scope needed then).
        if not h.trailing_data[0]:
            data = self.stream.try_read()
            if data is None and _others_runnable():
                # Busy: the next request usually arrives while the other
                # runnable tasks run; one yield costs far less than a wait.
                await yield_now()
                data = self.stream.try_read()
            if data is None:
                if not server.set_idle(self, True):
                    return None
                wait = server.header_timeout if first else server.idle_timeout
                with move_on_after(wait) as idle:
                    data = await self.stream.read()
                server.set_idle(self, False)
                if idle.cancelled_caught:
                    return None
            elif self.idle:
                server.set_idle(self, False)  # a new connection: now busy
            if not data:
                return None
            h.receive_data(data)
            if not first:
                started = now()

        # The rest of the head, by the deadline.
        try:
            event = await self._next_event(deadline=started + server.header_timeout)
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc.error_status_hint, str(exc))
            return None
        if event is None:
            await self._refuse(
                408, f"the request head took over {server.header_timeout:g} s"
            )
            return None
        if isinstance(event, h11.Request):
            return event
        return None  # ConnectionClosed: the client is done

    async def _next_event(
        self, *, deadline: float | None = None, idle: float | None = None
    ) -> Any:
        """The next h11 event; None when a read passed ``deadline`` (absolute)
        or waited ``idle`` seconds for data. A scope is entered only around a
        read that is needed.

        Raises:
            h11.RemoteProtocolError: the client broke the protocol.
        """
        h = self.h11
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            until = deadline if deadline is not None else now() + (idle or 0.0)
            with CancelScope(deadline=until) as scope:
                data = await self.stream.read()
            if scope.cancelled_caught:
                return None
            h.receive_data(data)

    async def _body_chunks(self, request: Request) -> AsyncIterator[bytes]:
        """The rest of ``request``'s body; each read within ``idle_timeout``."""
        server, h = self.server, self.h11
        if h.they_are_waiting_for_100_continue:
            await self._put(h11.InformationalResponse(status_code=100, headers=[]))
            await self._flush()
        while h.their_state is h11.SEND_BODY:
            try:
                event = await self._next_event(idle=server.idle_timeout)
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(
                    f"bad request body: {exc}", exc.error_status_hint
                ) from None
            if event is None:
                raise ProtocolError(
                    f"the client sent no body for {server.idle_timeout:g} s", 408
                )
            if isinstance(event, h11.Data):
                request._received += len(event.data)
                if request._received > server.max_body_bytes:
                    raise BodyTooLarge(
                        f"the request body passed {server.max_body_bytes} bytes "
                        "(serve_http's max_body_bytes)",
                        413,
                    )
                yield bytes(event.data)
            elif not isinstance(event, h11.EndOfMessage):
                raise ProtocolError(f"unexpected {type(event).__name__}", 400)

    # -- responding -----------------------------------------------------------

    async def _respond(self, event: h11.Request) -> bool:
        """Run the app on one request and send its response; True to go on."""
        server, h = self.server, self.h11

        # Limits checked before the app runs.
        head = _Head(event)
        if head.size > server.max_header_bytes:
            await self._refuse(431, f"request head over {server.max_header_bytes} B")
            return False
        if head.length is not None and head.length > server.max_body_bytes:
            await self._refuse(413, f"request body over {server.max_body_bytes} bytes")
            return False
        if event.http_version not in (b"1.1", b"1.0"):
            version = event.http_version.decode("ascii", "replace")
            await self._refuse(505, f"HTTP/{version} is not served; use HTTP/1.1")
            return False
        if head.chunked and head.length is not None:
            # Two framings at once: the pattern of request smuggling, where
            # a proxy in front may have read the body the other way.
            await self._refuse(400, "both Content-Length and Transfer-Encoding")
            return False

        # The app.
        request = Request(self, event, head.headers)
        asked_to_continue = h.they_are_waiting_for_100_continue
        try:
            response = await server.app(request)
            if not isinstance(response, Response):
                raise TypeError(
                    f"the app returned {type(response).__name__}, not a "
                    "curcor.net.http.Response; return Response(status, headers, "
                    "body)"
                )
            if isinstance(response.body, bytes):
                closes = self._closes_after(head, response)
                framed: bytes | None = self._frame(request, response, closes)
            else:
                framed = None
                head_event = self._response_head(request, response)
        except HTTPError as exc:
            await self._refuse(exc.status or 400, str(exc))
            return False
        except Exception:
            _log.exception("%s %s from %s: the app failed", *self._what(request))
            await self._refuse(500, "the server failed on this request")
            return False

        # The response, then whatever of the body the app left unread.
        if framed is not None:
            if not await self._send_framed(framed):
                return False
        elif not await self._send_response(request, response, head_event):
            return False
        if h.their_state is h11.SEND_BODY:
            if asked_to_continue and not request._started:
                return False  # it may never send the body we did not ask for
            if not head.body_follows and self._ended_now():
                pass  # no body: its end is parsed already (a GET, say)
            else:
                try:
                    async for _ in self._body_chunks(request):
                        pass
                except HTTPError:
                    return False
        if framed is not None:
            return h.their_state is h11.DONE and not closes
        return (
            h.our_state is h11.DONE and h.their_state is h11.DONE and not server.closing
        )

    # -- framing a response with a bytes body ---------------------------------
    #
    # Most responses carry a bytes body of known length. Framing those here
    # (status line, fields, Content-Length, body: one buffer) costs a tenth
    # of what h11's sending side costs per response, which on a keep-alive
    # benchmark is a quarter of the server's time. h11 still parses every
    # request; streamed bodies still go through h11 (chunked framing).
    # The rules h11 would apply are applied here: fields are validated
    # (no CR/LF injection), a HEAD response and 204/304 carry no body, and
    # "connection: close" is sent when the connection will close.

    def _frame(self, request: Request, response: Response, closes: bool) -> bytes:
        """The whole response to ``request`` as bytes (with "connection:
        close" when ``closes``).

        Raises:
            ValueError: the app's header fields are not valid HTTP.
        """
        body = response.body
        assert isinstance(body, bytes)
        status = response.status
        out = bytearray(b"HTTP/1.1 %d %s\r\n" % (status, _reason(status)))
        have_date = have_server = False
        for name, value in response.headers._items:
            key = name.lower()
            if key in _FRAMED_FIELDS:
                continue  # Content-Length is ours; the body is not chunked
            have_date = have_date or key == "date"
            have_server = have_server or key == "server"
            out += _field_line(name, value)
        if status not in _NO_BODY_STATUS:
            out += b"content-length: %d\r\n" % len(body)
        if not have_date:
            out += b"date: " + _http_date() + b"\r\n"
        if not have_server:
            out += b"server: " + SERVER_NAME + b"\r\n"
        if closes:
            out += b"connection: close\r\n"
        out += b"\r\n"
        if body and request.method != "HEAD" and status not in _NO_BODY_STATUS:
            out += body
        return bytes(out)

    def _closes_after(self, head: _Head, response: Response) -> bool:
        """True when the connection must close after this response (as h11
        decides keep-alive: HTTP/1.0, or "close" from either side)."""
        if self.server.closing or head.close:
            return True
        return "close" in (response.headers.get("connection") or "").lower()

    async def _send_framed(self, data: bytes) -> bool:
        """Send a framed response; False when the client went away."""
        stream = self.stream
        if stream.buffered:
            await self._flush()
        stream.write(data)
        try:
            await self._flush()
        except OSError:
            return False
        return True

    def _ended_now(self) -> bool:
        """For a request without a body: take its end from h11 without a
        read; False (nothing taken) if h11 sees anything else."""
        try:
            return type(self.h11.next_event()) is h11.EndOfMessage
        except h11.RemoteProtocolError:
            return False

    def _what(self, request: Request) -> tuple[str, str, Any]:
        return request.method, request.target, self.peer

    def _response_head(self, request: Request, response: Response) -> h11.Response:
        """The h11 head for ``response``; raises on headers h11 refuses."""
        headers = response.headers
        fields = [
            (n, v)
            for n, v in headers._encoded()
            if not (isinstance(response.body, bytes) and n.lower() == b"content-length")
        ]
        if isinstance(response.body, bytes) and response.status not in _NO_BODY_STATUS:
            fields.append((b"content-length", str(len(response.body)).encode()))
        if "date" not in headers:
            fields.append((b"date", _http_date()))
        if "server" not in headers:
            fields.append((b"server", SERVER_NAME))
        if self.server.closing:
            fields.append((b"connection", b"close"))
        reason = _reason(response.status)
        return h11.Response(status_code=response.status, headers=fields, reason=reason)

    async def _send_response(
        self, request: Request, response: Response, head: h11.Response
    ) -> bool:
        """Send head and body; False when the connection must close.

        A bytes body goes out with its head in one write; a streamed body is
        flushed chunk by chunk.
        """
        await self._put(head)
        body = response.body
        skip = request.method == "HEAD" or response.status in _NO_BODY_STATUS
        if isinstance(body, bytes):
            if body and not skip:
                await self._put(h11.Data(data=body))
        elif skip:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        else:
            await self._flush()
            try:
                async for chunk in body:
                    chunk = _chunk_bytes(chunk)
                    if chunk:
                        await self._put(h11.Data(data=chunk))
                        await self._flush()
            except HTTPError:
                return False  # the client stalled or overran while it streamed
            except OSError as exc:
                # The client left or stopped reading mid-body: not an app bug.
                _log.debug(
                    "%s %s from %s: client went away: %s", *self._what(request), exc
                )
                return False
            except Exception:
                # The head is out: a 500 is too late. Closing without the
                # last chunk tells the client the body is incomplete.
                _log.exception(
                    "%s %s from %s: the response body failed after the head was sent",
                    *self._what(request),
                )
                return False
        await self._put(h11.EndOfMessage())
        await self._flush()
        return True

    async def _put(self, event: Any) -> None:
        """Frame ``event`` into the write buffer (flushing first if it is full).

        Raises:
            OSError: as ``_flush``.
        """
        data = self.h11.send(event)
        if data:
            stream = self.stream
            if stream.buffered and stream.buffered + len(data) > stream.write_limit:
                await self._flush()
            stream.write(data)

    async def _flush(self) -> None:
        """Send what is buffered, within ``idle_timeout``.

        Raises:
            OSError: the client went away or read nothing for that long.
        """
        if not self.stream.buffered or self.stream.try_drain():
            return  # sent at once: no timeout scope (nor timer) needed
        with move_on_after(self.server.idle_timeout) as scope:
            await self.stream.drain()
        if scope.cancelled_caught:
            raise OSError(
                errno.ETIMEDOUT,
                f"the client read nothing for {self.server.idle_timeout:g} s",
            )

    async def _refuse(self, status: int, detail: str) -> None:
        """Send a short error response, if h11 still allows one, before a close."""
        h = self.h11
        if h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        # The detail may quote the client's bytes: keep it short.
        detail = detail if len(detail) <= 200 else detail[:200] + "..."
        body = f"{status} {_reason(status).decode()}: {detail}\n".encode()
        head = h11.Response(
            status_code=status,
            reason=_reason(status),
            headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"date", _http_date()),
                (b"server", SERVER_NAME),
                (b"connection", b"close"),
            ],
        )
        try:
            await self._put(head)
            await self._put(h11.Data(data=body))
            await self._put(h11.EndOfMessage())
            await self._flush()
        except (OSError, h11.LocalProtocolError):
            return
        if h.their_state not in _THEIR_END:
            # The client may still be sending (a body, or a head that ran
            # out of time): without lingering its kernel could get a reset
            # before it reads this response.
            await self._linger()

    async def _linger(self) -> None:
        """Stop sending and drop what the client sends, for up to ``LINGER`` s."""
        try:
            self.stream.socket.shutdown(_socket.SHUT_WR)
            with move_on_after(LINGER):
                while await self.stream.read():
                    pass
        except OSError:
            pass


def _reason(status: int) -> bytes:
    """The reason phrase of ``status`` (b"" for a code HTTPStatus lacks)."""
    reason = _REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            reason = b""
        _REASONS[status] = reason  # at most 400 codes (200-599)
    return reason


_REASONS: dict[int, bytes] = {}


def _check_seconds(api: str, name: str, value: Any) -> None:
    """Refuse a duration that is not a number of seconds >= 0."""
    if check_seconds(value, f"{api}: {name}") < 0:
        raise ValueError(f"{api}: {name} must be 0 or more seconds, not {value!r}")


def _chunk_bytes(chunk: Any) -> bytes:
    """A streamed body chunk as bytes (str as UTF-8).

    Raises:
        TypeError: anything else (``bytes(42)`` would send 42 NUL bytes).
    """
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(
        "a streamed body yields bytes or str chunks, not "
        f"{type(chunk).__name__} ({chunk!r:.40})"
    )


def _others_runnable() -> bool:
    """True when other tasks wait in this worker's run queue."""
    w = current_worker()
    return w is not None and bool(w.local)


def _field_line(name: str, value: str) -> bytes:
    """``name: value`` and CRLF, validated; the most recent are cached (an
    app tends to send the same few fields on every response).

    Raises:
        ValueError: not a valid field (it could inject another field).
    """
    line = _FIELD_LINES.get((name, value))
    if line is not None:
        return line
    if not _FIELD_NAME.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
        raise ValueError(
            f"invalid response header {name!r}: {value!r}; names are "
            "tokens and values hold no control characters (CR, LF, NUL) "
            "nor leading or trailing spaces"
        )
    line = b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
    if len(_FIELD_LINES) >= 1024:
        _FIELD_LINES.clear()  # a crude bound: values that vary are not cached
    _FIELD_LINES[(name, value)] = line
    return line


# Lock rule: single dict operations (atomic), from any worker; a race can
# only store an equal line twice.
_FIELD_LINES: dict[tuple[str, str], bytes] = {}


# -- the client ---------------------------------------------------------------------


# A pooled connection's key: (scheme, host, port), e.g. ("https", "a.org", 443).
_Key = tuple[str, str, int]


class _ClientConn:
    """One client connection; used by one request at a time."""

    __slots__ = ("h11", "key", "raw", "received", "reused", "stream")

    def __init__(self, key: _Key, stream: Stream, max_head: int) -> None:
        self.key = key
        self.stream = stream
        # The TCP socket, under the TLS session for https.
        sock = stream.socket
        self.raw: _socket.socket = (
            sock.socket.raw if isinstance(sock, TLSSocket) else sock.raw
        )
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
        self.reused = False
        self.received = 0  # bytes of the current response so far

    def looks_open(self) -> bool:
        """True when the server has not closed it: nothing waits to be read.

        Over TLS the peek sees the encrypted bytes: any (a close_notify, a
        late session ticket) count as "not known to be open", which costs a
        new connection and never a failed request.
        """
        try:
            self.raw.recv(1, _socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # b"" is EOF; bytes before a request are a broken server

    def close(self) -> None:
        self.stream.close()


class Client:
    """An HTTP/1.1 client with a small keep-alive pool per host.

    ``async with Client(base_url="http://127.0.0.1:8080") as c:
    r = await c.get("/v1/health")``. Paths are appended to ``base_url``'s
    path; full ``http://`` and ``https://`` URLs go where they say.
    ``headers`` are sent with every request.

    ``https://`` connections check the server's certificate against the
    URL's host with ``ssl`` (an ``ssl.SSLContext``); by default
    ``ssl.create_default_context()``, the system's trusted CAs. For a
    private CA pass ``ssl=ssl.create_default_context(cafile="ca.pem")``.

    ``timeout`` (seconds, None for none) bounds the connect, the sending of
    the request and the wait for the response head, together; and then each
    read of the body. For an overall deadline wrap the call in
    ``curcor.timeout(s)``; a cancelled request closes its connection.

    Raises:
        ValueError: ``base_url`` is not an ``http://`` or ``https://`` URL;
            ``ssl`` is a server-side context.
        TypeError: ``ssl`` is not an ``ssl.SSLContext``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        headers: Any = None,
        timeout: float | None = CLIENT_TIMEOUT,
        ssl: _ssl.SSLContext | None = None,
        max_idle_per_host: int = CLIENT_MAX_IDLE_PER_HOST,
        max_body_bytes: int = CLIENT_MAX_BODY_BYTES,
        max_header_bytes: int = CLIENT_MAX_HEADER_BYTES,
    ) -> None:
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(
                "Client(ssl=...) takes an ssl.SSLContext, such as "
                "ssl.create_default_context(cafile='ca.pem'), not "
                f"{type(ssl).__name__}"
            )
        if ssl is not None and ssl.protocol == _ssl.PROTOCOL_TLS_SERVER:
            raise ValueError(
                "Client(ssl=...) needs a client context: make it with "
                "ssl.create_default_context(), not with Purpose.CLIENT_AUTH"
            )
        if timeout is not None:
            _check_seconds("Client", "timeout", timeout)
        check_count(max_idle_per_host, "Client: max_idle_per_host", 0)
        check_count(max_body_bytes, "Client: max_body_bytes", 0)
        check_count(max_header_bytes, "Client: max_header_bytes", 1)
        # None until the first https:// connection makes the default one.
        self._ssl: _ssl.SSLContext | None = ssl
        self._base: urllib.parse.SplitResult | None = None
        if base_url is not None:
            self._base = _split_http_url(base_url)
        self.headers = Headers(headers)
        self.timeout = timeout
        self.max_idle_per_host = max_idle_per_host
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        # Lock rule: _idle, _live and _closed are guarded by _lock;
        # connections are closed after it is released.
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[_ClientConn]] = {}
        self._live: set[_ClientConn] = set()
        self._closed = False

    # -- the verbs --------------------------------------------------------------

    async def get(self, url: str, **kw: Any) -> ClientResponse:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, **kw)

    async def head(self, url: str, **kw: Any) -> ClientResponse:
        """``request("HEAD", url, ...)``."""
        return await self.request("HEAD", url, **kw)

    async def post(self, url: str, **kw: Any) -> ClientResponse:
        """``request("POST", url, ...)``."""
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> ClientResponse:
        """``request("PUT", url, ...)``."""
        return await self.request("PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> ClientResponse:
        """``request("DELETE", url, ...)``."""
        return await self.request("DELETE", url, **kw)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Any = None,
        body: Any = None,
        json: Any = None,
        params: Any = None,
        stream: bool = False,
    ) -> ClientResponse:
        """Send a request and return the response.

        ``body`` is bytes, str (UTF-8) or an async iterable of chunks (sent
        chunked); ``json`` sends an object as JSON instead. ``params`` (a
        mapping or pairs) are added to the query string. The body of the
        response is read before this returns, up to ``max_body_bytes``,
        unless ``stream=True``: then read it with ``read()`` or ``stream()``
        or give the connection back with ``aclose()``.

        Raises:
            OSError: the connection failed or was refused.
            TimeoutError: ``timeout`` passed.
            ProtocolError: the server broke HTTP/1.1 or closed mid-response.
            BodyTooLarge: the response body passed ``max_body_bytes``.
            RuntimeError: the client is closed.
        """
        method = method.upper()
        scheme, host, port, target, authority = self._resolve(url, params)
        if json is not None:
            body = _json.dumps(json).encode("utf-8")
            headers = Headers(headers)
            if "content-type" not in headers:
                headers.add("content-type", "application/json")
        fields = self._request_fields(authority, headers, body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            event = h11.Request(method=method, target=target, headers=fields)
        except h11.LocalProtocolError as exc:
            raise ValueError(f"cannot send {method} {target}: {exc}") from None
        replayable = body is None or isinstance(body, bytes | bytearray)
        retry = replayable and method in _IDEMPOTENT
        for attempt in (1, 2):
            with self._timeout_scope():
                conn = await self._checkout((scheme, host, port))
                try:
                    head = await self._exchange(conn, event, body)
                except _Stale:
                    self._discard(conn)
                    if attempt == 1 and retry:
                        continue
                    raise ProtocolError(
                        f"{host}:{port} closed the connection before responding"
                    ) from None
                except BaseException:
                    self._discard(conn)
                    raise
            break
        response = ClientResponse(self, conn, head, method)
        if not stream:
            await response.read()
        return response

    # -- the exchange -------------------------------------------------------------

    async def _exchange(
        self, conn: _ClientConn, event: h11.Request, body: Any
    ) -> h11.Response:
        """Send the request on ``conn`` and read the response head.

        Raises:
            _Stale: ``conn`` was reused and failed before the response began.
        """
        h = conn.h11
        try:
            await self._put(conn, event)
            if isinstance(body, bytes | bytearray):
                if body:
                    await self._put(conn, h11.Data(data=bytes(body)))
            elif body is not None:
                await conn.stream.drain()
                async for chunk in body:
                    chunk = _chunk_bytes(chunk)
                    if chunk:
                        await self._put(conn, h11.Data(data=chunk))
                        await conn.stream.drain()
            await self._put(conn, h11.EndOfMessage())
            await conn.stream.drain()
        except OSError:
            if conn.reused:
                raise _Stale() from None
            # The server may have answered early (a 413) and closed: what it
            # sent may still be readable, and is worth more than EPIPE.
            if h.their_state is not h11.SEND_RESPONSE:
                raise
            try:
                return await self._read_head(conn)
            except (OSError, ProtocolError):
                pass
            raise
        return await self._read_head(conn)

    async def _put(self, conn: _ClientConn, event: Any) -> None:
        """Frame ``event`` into the write buffer (flushing first if it is full)."""
        data = conn.h11.send(event)
        if data:
            stream = conn.stream
            if stream.buffered and stream.buffered + len(data) > stream.write_limit:
                await stream.drain()
            stream.write(data)

    async def _read_head(self, conn: _ClientConn) -> h11.Response:
        while True:
            event = await self._next_event(conn)
            if isinstance(event, h11.Response):
                # h11 bounds a head only while it is incomplete; one that
                # came in a single read is measured here.
                size = len(event.reason) + sum(
                    len(n) + len(v) + 4 for n, v in event.headers
                )
                if size > self.max_header_bytes:
                    raise ProtocolError(
                        f"the response head is over {self.max_header_bytes} "
                        "bytes (Client's max_header_bytes); raise it if this "
                        "server really sends such heads"
                    )
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise ProtocolError(f"expected a response, got {event!r}")

    async def _next_event(self, conn: _ClientConn, idle: float | None = None) -> Any:
        """The next h11 event from the server; a read that waits ``idle``
        seconds for data raises TimeoutError.

        Raises:
            _Stale: nothing came back on a reused connection.
            ProtocolError: bad framing, or the server closed mid-response.
            TimeoutError: ``idle`` passed.
        """
        h = conn.h11
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.received == 0 or "ConnectionClosed" in str(exc):
                    raise ProtocolError(
                        "the server closed the connection before a complete response"
                    ) from None
                if "Receive buffer too long" in str(exc):  # h11's own limit
                    raise ProtocolError(
                        f"the response head is over {self.max_header_bytes} "
                        "bytes (Client's max_header_bytes); raise it if this "
                        "server really sends such heads"
                    ) from None
                raise ProtocolError(f"bad response: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    if idle is None:
                        data = await conn.stream.read()
                    else:
                        with timeout(idle):
                            data = await conn.stream.read()
                except TimeoutError:
                    raise  # an OSError too, but never a sign of a stale connection
                except OSError:
                    if conn.reused and not conn.received:
                        raise _Stale() from None
                    raise
                if not data and conn.reused and not conn.received:
                    raise _Stale()
                conn.received += len(data)
                h.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise ProtocolError("the server closed the connection mid-response")
            return event

    def _timeout_scope(self) -> CancelScope:
        if self.timeout is None:
            return CancelScope()
        return timeout(self.timeout)

    # -- the pool -------------------------------------------------------------------

    async def _checkout(self, key: _Key) -> _ClientConn:
        """An idle connection to ``key`` that still looks open, or a new one.

        Raises:
            OSError: the connection failed; ``TLSError`` for a failed https
                handshake, saying why and what to change.
        """
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError(
                        "this Client is closed; make a new one, or use it inside "
                        "`async with Client(...) as c:`"
                    )
                stack = self._idle.get(key)
                conn = stack.pop() if stack else None
            if conn is None:
                break
            if conn.looks_open():
                return conn
            self._discard(conn)
        scheme, host, port = key
        if scheme == "https":
            stream = await self._dial_tls(host, port)
        else:
            stream = await dial_tcp(host, port)
        conn = _ClientConn(key, stream, self.max_header_bytes)
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(conn)
        if closed:
            stream.close()
            raise RuntimeError("the Client was closed while this request dialled")
        return conn

    async def _dial_tls(self, host: str, port: int) -> Stream:
        """A TLS stream to ``host:port``, its certificate checked for ``host``.

        Raises:
            TLSError: the handshake failed (see ``_tls_failure``).
            OSError: the connection failed.
        """
        context = self._ssl
        if context is None:
            # Made without the lock: two first requests may each make one;
            # either will do.
            context = self._ssl = _ssl.create_default_context()
        try:
            return await dial_tcp(host, port, ssl=context)
        except TLSError as exc:
            raise _tls_failure(host, port, exc) from exc.__cause__ or exc

    def _release(self, conn: _ClientConn) -> None:
        """The response on ``conn`` is complete: pool it, or close it."""
        h = conn.h11
        if (
            h.our_state is h11.DONE
            and h.their_state is h11.DONE
            and not h.trailing_data[0]
        ):
            h.start_next_cycle()
            conn.reused = True
            conn.received = 0
            with self._lock:
                stack = self._idle.setdefault(conn.key, [])
                if not self._closed and len(stack) < self.max_idle_per_host:
                    stack.append(conn)
                    return
        self._discard(conn)

    def _discard(self, conn: _ClientConn) -> None:
        with self._lock:
            self._live.discard(conn)
        conn.close()

    async def aclose(self) -> None:
        """Close every connection, idle or in use; the client is done."""
        with self._lock:
            self._closed = True
            conns = list(self._live)
            self._live.clear()
            self._idle.clear()
        for conn in conns:
            conn.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- building requests ----------------------------------------------------------

    def _resolve(self, url: str, params: Any) -> tuple[str, str, int, str, str]:
        """(scheme, host, port, target, Host header) for ``url``."""
        if "://" in url:
            parts = _split_http_url(url)
            path = parts.path
        elif self._base is None:
            raise ValueError(
                f"{url!r} is not a full URL and the Client has no base_url; "
                "write Client(base_url='http://host:port') or a full URL"
            )
        else:
            parts = self._base
            path = parts.path.rstrip("/") + "/" + url.lstrip("/")
            path = path.partition("#")[0]  # a fragment never goes on the wire
            path, _, query = path.partition("?")
            parts = parts._replace(query=query)
        if not path.isascii() or not parts.query.isascii():
            raise ValueError(
                f"{url!r} has characters a request target cannot carry; "
                "percent-encode them first: urllib.parse.quote(path)"
            )
        target = path or "/"
        query = parts.query
        if params:
            extra = urllib.parse.urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target = f"{target}?{query}"
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        authority = parts.netloc.rpartition("@")[2]
        return parts.scheme, host, port, target, authority

    def _request_fields(
        self, authority: str, headers: Any, body: Any
    ) -> list[tuple[bytes, bytes]]:
        merged = Headers(self.headers)
        for name, value in Headers(headers).items():
            merged.set(name, value)
        if "host" not in merged:
            merged.add("host", authority)
        if "user-agent" not in merged:
            merged.add("user-agent", USER_AGENT)
        if isinstance(body, str):
            if "content-type" not in merged:
                merged.add("content-type", "text/plain; charset=utf-8")
            merged.set("content-length", str(len(body.encode("utf-8"))))
        elif isinstance(body, bytes | bytearray):
            merged.set("content-length", str(len(body)))
        elif body is not None:
            if not isinstance(body, AsyncIterable):
                raise TypeError(
                    "a request body is bytes, str or an async iterable of "
                    f"chunks, not {type(body).__name__}"
                )
            merged.remove("content-length")
            merged.set("transfer-encoding", "chunked")
        return merged._encoded()


def _split_http_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
    return parts


# OpenSSL's certificate verification codes (X509_V_ERR_* in
# openssl/x509_vfy.h) that mean "signed by no CA this side trusts".
_UNTRUSTED_CA = frozenset({2, 18, 19, 20, 21})
_CERT_EXPIRED = 10
_NAME_MISMATCH = frozenset({62, 64})  # host name, IP address

# OpenSSL's reasons for a handshake that met something other than TLS,
# such as a plain HTTP server's 400 response.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})


def _tls_failure(host: str, port: int, exc: TLSError) -> TLSError:
    """The error for a failed https handshake: where, why, and the fix."""
    cause = exc.__cause__
    code = getattr(cause, "verify_code", None)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if code in _UNTRUSTED_CA:
        fix = (
            "the server's certificate is not signed by a CA this Client "
            "trusts; if it comes from a private CA, trust that CA: "
            "Client(ssl=ssl.create_default_context(cafile='ca.pem'))"
        )
    elif code in _NAME_MISMATCH:
        fix = (
            f"the certificate does not name {host!r}; use a URL with a host "
            "name the certificate lists (its subjectAltName)"
        )
    elif code == _CERT_EXPIRED:
        fix = "the server's certificate has expired; it must be renewed there"
    elif getattr(cause, "reason", None) in _NOT_TLS:
        fix = (
            f"the server on port {port} does not speak TLS; if it serves "
            "plain HTTP, use an http:// URL"
        )
    else:
        fix = "check that the server speaks TLS on this port"
    why = cause if cause is not None else exc
    return TLSError(f"https://{where}: TLS handshake failed: {why}; {fix}")


class ClientResponse:
    """A response the ``Client`` received.

    Attributes:
        status: the status code (200).
        reason: the reason phrase ("OK").
        headers: a ``Headers``.
        http_version: "1.1" or "1.0".
    """

    def __init__(
        self, client: Client, conn: _ClientConn, head: h11.Response, method: str
    ) -> None:
        self._client = client
        self._conn: _ClientConn | None = conn
        self._body: bytes | None = None
        self._started = False
        self.method = method
        self.status = head.status_code
        self.reason = head.reason.decode("latin-1")
        self.headers = Headers._from_h11(head.headers)
        self.http_version = head.http_version.decode("ascii")

    async def read(self) -> bytes:
        """The whole body (kept after the first call).

        Raises:
            BodyTooLarge: over the client's ``max_body_bytes``.
            ProtocolError, TimeoutError, OSError: as for ``Client.request``.
        """
        if self._body is None:
            data = bytearray()
            async for chunk in self.stream():
                data += chunk
            self._body = bytes(data)
        return self._body

    async def text(self) -> str:
        """The body decoded with the charset of its Content-Type (UTF-8)."""
        charset = "utf-8"
        for param in (self.headers.get("content-type") or "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        return (await self.read()).decode(charset, errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: it is not JSON.
        """
        return _json.loads(await self.read())

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk (for ``stream=True`` requests).

        Raises:
            RuntimeError: the body was already streamed.
            BodyTooLarge, ProtocolError, TimeoutError, OSError: as ``read``.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._started:
            raise RuntimeError("the response body was already read by stream()")
        self._started = True
        conn, client = self._conn, self._client
        if conn is None:
            raise RuntimeError("the response was closed before its body was read")
        received = 0
        done = False
        try:
            while True:
                event = await client._next_event(conn, client.timeout)
                if isinstance(event, h11.EndOfMessage):
                    done = True
                    return
                if isinstance(event, h11.Data):
                    received += len(event.data)
                    if received > client.max_body_bytes:
                        raise BodyTooLarge(
                            f"the response body passed {client.max_body_bytes} "
                            "bytes (Client's max_body_bytes)"
                        )
                    yield bytes(event.data)
        finally:
            self._conn = None
            if done:
                client._release(conn)
            else:
                client._discard(conn)

    async def aclose(self) -> None:
        """Give the connection back unread: it is closed, not reused."""
        conn, self._conn = self._conn, None
        if conn is not None and self._body is None:
            self._client._discard(conn)

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason}>"
