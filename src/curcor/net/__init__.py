"""Network I/O on curcor: awaitable sockets, buffered streams, TCP helpers.

``stream = await curcor.net.dial_tcp("127.0.0.1", port)``;
``port = await tg.start(curcor.net.serve_tcp, handler)``.
"""

from __future__ import annotations

from .._core.io import (
    BusyResourceError,
    ClosedResourceError,
    notify_closing,
    wait_readable,
    wait_writable,
)
from .process import (
    DEVNULL,
    PIPE,
    STDOUT,
    CalledProcessError,
    CompletedProcess,
    PipeEnd,
    Process,
    open_process,
    run_process,
)
from .socket import Socket, getaddrinfo, socket
from .stream import (
    IncompleteReadError,
    LimitOverrunError,
    Listener,
    Stream,
    WriteBufferFull,
    dial_tcp,
    dial_unix,
    listen_tcp,
    listen_unix,
    serve_tcp,
    serve_unix,
)
from .tls import TLSError, TLSSocket

__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "BusyResourceError",
    "CalledProcessError",
    "ClosedResourceError",
    "CompletedProcess",
    "IncompleteReadError",
    "LimitOverrunError",
    "Listener",
    "PipeEnd",
    "Process",
    "Socket",
    "Stream",
    "TLSError",
    "TLSSocket",
    "WriteBufferFull",
    "dial_tcp",
    "dial_unix",
    "getaddrinfo",
    "listen_tcp",
    "listen_unix",
    "notify_closing",
    "open_process",
    "run_process",
    "serve_tcp",
    "serve_unix",
    "socket",
    "wait_readable",
    "wait_writable",
]

# HTTP loads on first use: h11 is an optional dependency (the http extra).
_HTTP = {
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
}


def __getattr__(name: str) -> object:
    if name in _HTTP:
        from . import http

        return getattr(http, name)
    raise AttributeError(f"module 'curcor.net' has no attribute {name!r}")
