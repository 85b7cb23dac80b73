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
from .socket import Socket, getaddrinfo, socket
from .stream import (
    IncompleteReadError,
    LimitOverrunError,
    Listener,
    Stream,
    WriteBufferFull,
    dial_tcp,
    listen_tcp,
    serve_tcp,
)

__all__ = [
    "BusyResourceError",
    "ClosedResourceError",
    "IncompleteReadError",
    "LimitOverrunError",
    "Listener",
    "Socket",
    "Stream",
    "WriteBufferFull",
    "dial_tcp",
    "getaddrinfo",
    "listen_tcp",
    "notify_closing",
    "serve_tcp",
    "socket",
    "wait_readable",
    "wait_writable",
]
