"""HTTP hello benchmark processes: one HTTP server per runtime, one load generator.

    python benchmarks/http_hello.py --server curcor [--cpu 0]
    python benchmarks/http_hello.py --client --port P [--conns 50
        --seconds 3 --warmup 0.5 --cpu 1 --server-pid PID]

``benchmarks/run.py --http`` starts these: per run, one server process and
one load-generator process, each pinned to its own CPU when the machine has
two or more, then kills both by pid. See benchmarks/README.md and
docs/benchmarks.md ("HTTP hello").

Server mode binds 127.0.0.1 port 0, prints one JSON line on stdout
(``{"port": ..., "pid": ..., "cpus": [...], ...}``) once it accepts, and runs
until killed. Every server answers ``GET /`` with ``200`` and the body
``hello`` (Content-Length framing, keep-alive), and anything else with 404;
every one parses with h11:

- ``curcor``: ``curcor.net.http.serve_http`` with an app returning
  ``Response(body="hello")`` (as in examples/http_hello.py);
- ``asyncio-h11``: ``asyncio.start_server``, one ``h11.Connection`` per
  connection, ``reader.read(65536)`` / ``writer.write`` / ``drain``; the
  response carries the same headers as curcor's (content-type,
  content-length, date cached per second, server);
- ``uvloop-h11``: the same code under ``uvloop.run``.

Client mode is the single load generator used for every server: ``--conns``
keep-alive connections, each a closed loop with no pipelining (send
``GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n``, wait for the whole response,
check it, send the next). Parsing is minimal: the head ends at the first
blank line, must start with ``HTTP/1.1 200`` and carry a Content-Length;
the body must be exactly ``hello``. It runs on asyncio protocols under
uvloop when importable (else plain asyncio; the JSON says which). After
``--warmup`` seconds it counts the responses completed during ``--seconds``
and prints one JSON line: requests/s, its own and the server's CPU use over
that window (``/proc/PID/stat``) and the per-connection minimum and maximum.
Then it stops sending, waits for the responses in flight and closes every
connection. Connecting and that final wait are each bounded to 10 s.

Exit status: 0 ok, 1 failure (wrong response, lost connection, ...), 3 the
runtime cannot be imported.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from echo import HOST, proc_cpu_s, run_client, run_server

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3
READ_SIZE = 65536  # bytes asked per read by the asyncio servers
BODY = b"hello"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

SERVERS = ("curcor", "asyncio-h11", "uvloop-h11")

Ready = Callable[[int, Any], None]


# -------------------------------------------------------------------- servers


def serve_curcor(ready: Ready) -> None:
    from workloads import _import_curcor

    curcor = _import_curcor()
    from curcor.net import http

    async def app(request: Any) -> Any:
        if request.path == "/":
            return http.Response(body="hello")
        return http.Response(404, body="not found\n")

    async def main() -> None:
        async with curcor.TaskGroup() as tg:
            port = await tg.start(http.serve_http, app, HOST, 0)
            ready(port, getattr(curcor, "__version__", None))

    curcor.run(main())


async def _asyncio_h11(ready: Ready, version: Any) -> None:
    import asyncio
    from email.utils import formatdate

    import h11

    date_cache: list[Any] = [0, b""]

    def http_date() -> bytes:
        second = int(time.time())
        if date_cache[0] != second:
            date_cache[0] = second
            date_cache[1] = formatdate(second, usegmt=True).encode("ascii")
        return date_cache[1]

    def response(status: int, body: bytes) -> h11.Response:
        return h11.Response(
            status_code=status,
            reason=b"OK" if status == 200 else b"Not Found",
            headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"date", http_date()),
                (b"server", b"asyncio-h11"),
            ],
        )

    async def handle(reader: Any, writer: Any) -> None:
        conn = h11.Connection(h11.SERVER)
        target = b""
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(READ_SIZE))
                elif isinstance(event, h11.Request):
                    target = event.target
                elif isinstance(event, h11.EndOfMessage):
                    body = BODY if target == b"/" else b"not found\n"
                    status = 200 if target == b"/" else 404
                    writer.write(
                        conn.send(response(status, body))
                        + conn.send(h11.Data(data=body))
                        + conn.send(h11.EndOfMessage())
                    )
                    await writer.drain()
                    if conn.our_state is not h11.DONE:
                        break
                    conn.start_next_cycle()
                elif isinstance(event, h11.Data):
                    pass  # a request body: not used
                else:  # ConnectionClosed, PAUSED
                    break
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    ready(server.sockets[0].getsockname()[1], version)
    await server.serve_forever()


def serve_asyncio(ready: Ready, *, uv: bool) -> None:
    import asyncio

    import h11

    if uv:
        import uvloop

        uvloop.run(
            _asyncio_h11(ready, f"uvloop {uvloop.__version__}, h11 {h11.__version__}")
        )
    else:
        asyncio.run(_asyncio_h11(ready, f"h11 {h11.__version__}"))


def server_main(name: str, cpu: int | None) -> int:
    return run_server(
        name,
        cpu,
        "http server",
        lambda ready: {
            "curcor": lambda: serve_curcor(ready),
            "asyncio-h11": lambda: serve_asyncio(ready, uv=False),
            "uvloop-h11": lambda: serve_asyncio(ready, uv=True),
        },
    )


# ------------------------------------------------------------- load generator


def client_main(args: argparse.Namespace) -> int:
    return run_client(args, {}, _client)


def content_length(head: bytes) -> int | None:
    """The Content-Length of a response head, or None (minimal parsing)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    loop = asyncio.get_running_loop()
    all_idle = loop.create_future()
    state: dict[str, Any] = {"count": 0, "running": True, "error": None, "idle": 0}
    n_conns = args.conns

    def fail(why: str) -> None:
        if state["error"] is None:
            state["error"] = why
        state["running"] = False
        if not all_idle.done():
            all_idle.set_result(None)

    class Conn(asyncio.Protocol):
        def __init__(self, index: int) -> None:
            self.index = index
            self.count = 0
            self.buf = b""
            self.head_len = 0  # the whole response's length, once known
            self.response_len = 0
            self.transport: Any = None
            self.closed_ok = False

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            if not self.response_len:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    self.buf = buf
                    return
                head = buf[:end]
                if not head.startswith(b"HTTP/1.1 200 "):
                    fail(f"conn {self.index}: {head[:40]!r}")
                    return
                length = content_length(head)
                if length is None:
                    fail(f"conn {self.index}: no Content-Length in {head!r}")
                    return
                self.head_len = end + 4
                self.response_len = end + 4 + length
            if len(buf) < self.response_len:
                self.buf = buf
                return
            if len(buf) > self.response_len:
                fail(f"conn {self.index}: bytes after the response (pipelined?)")
                return
            if buf[self.head_len :] != BODY:
                fail(f"conn {self.index}: body {buf[self.head_len :]!r}")
                return
            self.buf = b""
            self.response_len = 0
            self.count += 1
            state["count"] += 1
            if state["running"]:
                self.transport.write(REQUEST)
            else:
                state["idle"] += 1
                if state["idle"] == n_conns and not all_idle.done():
                    all_idle.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.closed_ok:
                fail(f"conn {self.index}: connection lost ({exc or 'EOF'})")

    conns: list[Conn] = []
    try:

        async def connect_all() -> None:
            for i in range(n_conns):
                _, proto = await loop.create_connection(
                    lambda i=i: Conn(i), HOST, args.port
                )
                sock = proto.transport.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns.append(proto)

        await asyncio.wait_for(connect_all(), 10.0)
        for c in conns:
            c.transport.write(REQUEST)

        marks: dict[str, Any] = {}

        def mark(name: str) -> None:
            marks[name] = (
                time.perf_counter(),
                state["count"],
                time.process_time(),
                proc_cpu_s(args.server_pid),
                [c.count for c in conns],
            )

        await asyncio.sleep(args.warmup)
        mark("start")
        await asyncio.sleep(args.seconds)
        mark("end")
        state["running"] = False
        if state["error"] is None:
            try:
                await asyncio.wait_for(asyncio.shield(all_idle), 10.0)
            except TimeoutError:
                fail(f"{n_conns - state['idle']} responses missing after 10 s")
        if state["error"] is not None:
            return {"ok": False, "error": state["error"]}
    finally:
        for c in conns:
            c.closed_ok = True
            c.transport.close()
        await asyncio.sleep(0)

    t0, n0, cpu0, srv0, per0 = marks["start"]
    t1, n1, cpu1, srv1, per1 = marks["end"]
    window = t1 - t0
    per_conn = [b - a for a, b in zip(per0, per1, strict=True)]
    out: dict[str, Any] = {
        "ok": True,
        "window_s": window,
        "requests": n1 - n0,
        "req_per_s": (n1 - n0) / window,
        "client_cpu": (cpu1 - cpu0) / window,
        "conn_min": min(per_conn),
        "conn_max": max(per_conn),
        "total_requests": state["count"],
    }
    if srv0 is not None and srv1 is not None:
        out["server_cpu"] = (srv1 - srv0) / window
    return out


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--server", choices=SERVERS, help="run this HTTP server")
    mode.add_argument("--client", action="store_true", help="run the load")
    parser.add_argument("--port", type=int, help="client: the server's port")
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured")
    parser.add_argument("--warmup", type=float, default=0.5, help="not measured")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument(
        "--server-pid", type=int, default=None, help="client: report its CPU use"
    )
    args = parser.parse_args(argv)
    if args.server:
        return server_main(args.server, args.cpu)
    if args.port is None:
        parser.error("--client needs --port")
    if args.conns < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--conns and --seconds must be positive")
    return client_main(args)


if __name__ == "__main__":
    sys.exit(main())
