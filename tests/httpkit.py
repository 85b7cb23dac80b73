"""What the HTTP and HTTPS tests share: the app they serve, a server for a
block, a standard-library server (its handler, and one for a block), and curl
bounded by a timeout."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import curcor
from curcor.net import http as h


async def app(request: h.Request) -> h.Response:
    """The app most tests serve."""
    if request.path == "/":
        return h.Response(body="hello")
    if request.path == "/echo":
        return h.Response(body=await request.body())
    if request.path == "/peer":
        return h.Response(body=str(request.client[1]))
    if request.path == "/host":
        return h.Response(body=request.header("host") or "")
    if request.path == "/chunks":

        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"part{i};".encode()

        return h.Response(body=parts())
    if request.path == "/boom":
        raise RuntimeError("the handler broke")
    if request.path == "/v1/health":
        return await h.health_handler("1.2.3", weight=7)(request)
    return h.Response(404, body="not found")


@asynccontextmanager
async def serving(handler=app, *, ssl: Any = None, **settings):
    """A server (HTTPS with ``ssl``) for the block; cancelled (a graceful
    shutdown) at its end."""
    async with curcor.TaskGroup() as tg:
        serve = functools.partial(h.serve_http, handler, ssl=ssl, **settings)
        port = await tg.start(serve)
        yield port
        tg.cancel_scope.cancel()


class StdlibHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/until-close":
            # No length: the body runs to the close, HTTP/1.0 style.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"to the end")
            self.close_connection = True
            return
        body = f"stdlib {self.path} {self.client_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[::-1])

    def log_message(self, format: str, *args: object) -> None:
        pass


def run_curl(curl: str, *args: str) -> tuple[int, bytes, bytes]:
    """curl ARGS, bounded: (status, stdout, stderr); -q ignores ~/.curlrc."""
    cmd = [curl, "-q", "-sS", "--noproxy", "*", "--max-time", "3", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


@asynccontextmanager
async def stdlib_serving(wrap: Any = None):
    """A standard-library server on a thread for the block; yields its port.
    ``wrap(sock)`` replaces its listening socket (TLS)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StdlibHandler)
    if wrap is not None:
        server.socket = wrap(server.socket)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="stdlib"
    )
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        await curcor.to_thread(server.shutdown)
        server.server_close()
        thread.join(timeout=3)
