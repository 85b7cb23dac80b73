"""Echo benchmark processes: one echo server per runtime, one load generator.

    python benchmarks/echo.py --server curcor [--cpu 0]
    python benchmarks/echo.py --client --port P [--conns 100 --size 1024
        --seconds 3 --warmup 0.5 --cpu 1 --server-pid PID]

``benchmarks/run.py --echo`` starts these: per run, one server process and
one load-generator process, each pinned to its own CPU when the machine has
two or more, then kills both by pid. See benchmarks/README.md and
docs/benchmarks.md ("Echo").

Server mode binds 127.0.0.1 port 0, prints one JSON line on stdout
(``{"port": ..., "pid": ..., "cpus": [...], ...}``) once it accepts, and runs
until killed. Every server echoes whatever it reads, read-then-write, with no
framing: curcor (``curcor.net.serve_tcp`` + ``Stream.read/write/drain``),
curcor-socket (the same server, handler on the ``Socket``: ``recv`` +
``sendall``), asyncio and uvloop with streams (``start_server``,
``reader.read`` + ``writer.write`` + ``drain``) or with a ``Protocol``
(``data_received`` -> ``transport.write``), and trio (``trio.serve_tcp``,
``receive_some`` + ``send_all``).

Client mode is the single load generator used for every server: ``--conns``
connections, each a closed loop (send one ``--size`` message, wait for the
whole echo, check every byte, send the next). It is written on asyncio
protocols, run on uvloop when importable (else plain asyncio; the JSON says
which). After ``--warmup`` seconds it counts the echoes completed during
``--seconds`` and prints one JSON line: messages/s, its own and the server's
CPU use over that window (``/proc/PID/stat``), and the per-connection
minimum and maximum (fairness). Then it stops sending, waits for the echoes
in flight and closes every connection. Connecting and that final wait are
each bounded to 10 s, so a run lasts at most ``warmup + seconds + 20`` s
(and ``run.py`` kills it past its own timeout).

Exit status: 0 ok, 1 failure (wrong bytes, lost connection, ...), 3 the
runtime cannot be imported.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3
HOST = "127.0.0.1"  # servers listen here only; the client dials only this
READ_SIZE = 65536  # bytes asked per read by every server

SERVERS = (
    "curcor",
    "curcor-socket",
    "asyncio-streams",
    "asyncio-protocol",
    "uvloop-streams",
    "uvloop-protocol",
    "trio",
)


def pin(cpu: int | None) -> list[int] | None:
    """Pin this process to ``cpu`` (Linux); the CPUs it may run on after."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0))


# -------------------------------------------------------------------- servers
# Each takes ready(port, version) and serves until the process is killed.

Ready = Callable[[int, Any], None]


def serve_curcor(ready: Ready, *, raw_socket: bool = False) -> None:
    from workloads import _import_curcor

    curcor = _import_curcor()
    from curcor import net

    async def echo_stream(stream: Any) -> None:
        try:
            while data := await stream.read():
                stream.write(data)
                await stream.drain()
        except ConnectionError:
            pass

    async def echo_socket(stream: Any) -> None:
        sock = stream.socket
        try:
            while data := await sock.recv(READ_SIZE):
                await sock.sendall(data)
        except ConnectionError:
            pass

    async def main() -> None:
        handler = echo_socket if raw_socket else echo_stream
        async with curcor.TaskGroup() as tg:
            port = await tg.start(net.serve_tcp, handler, HOST, 0)
            ready(port, getattr(curcor, "__version__", None))

    curcor.run(main())


async def _asyncio_streams(ready: Ready, version: Any) -> None:
    import asyncio

    async def echo(reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, HOST, 0)
    ready(server.sockets[0].getsockname()[1], version)
    await server.serve_forever()


async def _asyncio_protocol(ready: Ready, version: Any) -> None:
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    server = await asyncio.get_running_loop().create_server(Echo, HOST, 0)
    ready(server.sockets[0].getsockname()[1], version)
    await server.serve_forever()


def serve_asyncio(ready: Ready, *, protocol: bool, uv: bool) -> None:
    import asyncio

    body = _asyncio_protocol if protocol else _asyncio_streams
    if uv:
        import uvloop

        uvloop.run(body(ready, uvloop.__version__))
    else:
        asyncio.run(body(ready, platform.python_version()))


async def trio_echo(stream: Any) -> None:
    """trio's echo handler (also the hog benchmark's, benchmarks/hog.py)."""
    import trio

    try:
        while data := await stream.receive_some(READ_SIZE):
            await stream.send_all(data)
    except (ConnectionError, trio.BrokenResourceError):
        pass


def serve_trio(ready: Ready) -> None:
    import trio

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, trio_echo, 0, host=HOST)
            listeners = await nursery.start(serve)
            ready(listeners[0].socket.getsockname()[1], trio.__version__)

    trio.run(main)


def server_main(name: str, cpu: int | None) -> int:
    return run_server(
        name,
        cpu,
        "echo server",
        lambda ready: {
            "curcor": lambda: serve_curcor(ready),
            "curcor-socket": lambda: serve_curcor(ready, raw_socket=True),
            "asyncio-streams": lambda: serve_asyncio(ready, protocol=False, uv=False),
            "asyncio-protocol": lambda: serve_asyncio(ready, protocol=True, uv=False),
            "uvloop-streams": lambda: serve_asyncio(ready, protocol=False, uv=True),
            "uvloop-protocol": lambda: serve_asyncio(ready, protocol=True, uv=True),
            "trio": lambda: serve_trio(ready),
        },
    )


def run_server(
    name: str,
    cpu: int | None,
    what: str,
    runners: Callable[[Ready], dict[str, Callable[[], None]]],
) -> int:
    """Pin to ``cpu``, run server ``name`` from ``runners(ready)``; ``ready``
    prints the JSON line the harness waits for (shared with http_hello.py).
    Returns the exit status."""
    cpus = pin(cpu)

    def ready(port: int, version: Any) -> None:
        line = {
            "port": port,
            "pid": os.getpid(),
            "server": name,
            "cpus": cpus,
            "runtime_version": version,
            "python": platform.python_version(),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    try:
        runners(ready)[name]()
    except (ImportError, ModuleNotFoundError) as exc:
        traceback.print_exc()
        print(f"{what} {name}: unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 0
    return 0


# ------------------------------------------------------------- load generator


def proc_cpu_s(pid: int | None) -> float | None:
    """utime + stime of ``pid`` in seconds (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Generator:
    """The closed-loop load: state shared by every connection."""

    def __init__(self, conns: int, size: int) -> None:
        rng = random.Random(20261204)
        # 16 distinct payloads; connection i sends payload (i + k) % 16 as
        # its k-th message, so a stale or crossed echo is caught.
        self.payloads = [rng.randbytes(size) for _ in range(16)]
        self.size = size
        self.conns = conns
        self.count = 0
        self.running = True
        self.error: str | None = None
        self.idle = 0  # connections that stopped after the run


def client_main(args: argparse.Namespace) -> int:
    return run_client(args, {"size": args.size}, _client)


def run_client(
    args: argparse.Namespace,
    extra: dict[str, Any],
    client: Callable[[argparse.Namespace], Any],
) -> int:
    """Pin, run ``client(args)`` on uvloop (else asyncio) and print the run's
    JSON record with ``extra`` in it (shared with http_hello.py)."""
    cpus = pin(args.cpu)
    record: dict[str, Any] = {
        "role": "client",
        "pid": os.getpid(),
        "cpus": cpus,
        "conns": args.conns,
        **extra,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "python": platform.python_version(),
        "ok": False,
    }
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
        record["loop"] = f"uvloop {uvloop.__version__}"
    except ImportError:
        import asyncio

        runner = asyncio.run
        record["loop"] = f"asyncio {platform.python_version()}"
    try:
        record.update(runner(client(args)))
    except BaseException as exc:
        traceback.print_exc()
        record["error"] = f"{type(exc).__name__}: {exc}"
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 0 if record["ok"] else EXIT_FAILED


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    loop = asyncio.get_running_loop()
    gen = Generator(args.conns, args.size)
    all_idle = loop.create_future()
    size = args.size
    payloads = gen.payloads

    def fail(why: str) -> None:
        if gen.error is None:
            gen.error = why
        gen.running = False
        if not all_idle.done():
            all_idle.set_result(None)

    class Conn(asyncio.Protocol):
        def __init__(self, index: int) -> None:
            self.index = index
            self.k = index
            self.count = 0
            self.buf = bytearray()
            self.expected = payloads[index % 16]
            self.transport: Any = None
            self.closed_ok = False

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def send_next(self) -> None:
            self.k += 1
            self.expected = payloads[self.k & 15]
            self.transport.write(self.expected)

        def data_received(self, data: bytes) -> None:
            buf = self.buf
            if not buf and len(data) == size:
                got: Any = data  # the usual case: the whole echo at once
            else:
                buf += data
                if len(buf) < size:
                    return
                if len(buf) > size:
                    fail(f"conn {self.index}: {len(buf)} bytes echoed, sent {size}")
                    return
                got = buf
            if got != self.expected:
                fail(f"conn {self.index}: echoed bytes differ from the message")
                return
            buf.clear()
            self.count += 1
            gen.count += 1
            if gen.running:
                self.send_next()
            else:
                gen.idle += 1
                if gen.idle == gen.conns and not all_idle.done():
                    all_idle.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.closed_ok:
                fail(f"conn {self.index}: connection lost ({exc or 'EOF'})")

    conns: list[Conn] = []
    try:

        async def connect_all() -> None:
            for i in range(args.conns):
                _, proto = await loop.create_connection(
                    lambda i=i: Conn(i), HOST, args.port
                )
                sock = proto.transport.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns.append(proto)

        await asyncio.wait_for(connect_all(), 10.0)
        for c in conns:
            c.transport.write(c.expected)

        marks: dict[str, Any] = {}

        def mark(name: str) -> None:
            marks[name] = (
                time.perf_counter(),
                gen.count,
                time.process_time(),
                proc_cpu_s(args.server_pid),
                [c.count for c in conns],
            )

        await asyncio.sleep(args.warmup)
        mark("start")
        await asyncio.sleep(args.seconds)
        mark("end")
        gen.running = False
        if gen.error is None:
            try:
                await asyncio.wait_for(asyncio.shield(all_idle), 10.0)
            except TimeoutError:
                fail(f"{gen.conns - gen.idle} echoes still missing after 10 s")
        if gen.error is not None:
            return {"ok": False, "error": gen.error}
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
        "messages": n1 - n0,
        "msg_per_s": (n1 - n0) / window,
        "mib_per_s": (n1 - n0) * size * 2 / window / (1 << 20),
        "client_cpu": (cpu1 - cpu0) / window,
        "conn_min": min(per_conn),
        "conn_max": max(per_conn),
        "total_messages": gen.count,
    }
    if srv0 is not None and srv1 is not None:
        out["server_cpu"] = (srv1 - srv0) / window
    return out


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--server", choices=SERVERS, help="run this echo server")
    mode.add_argument("--client", action="store_true", help="run the load")
    parser.add_argument("--port", type=int, help="client: the server's port")
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024, help="message bytes")
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
    if args.conns < 1 or args.size < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--conns, --size, --seconds must be positive")
    return client_main(args)


if __name__ == "__main__":
    sys.exit(main())
