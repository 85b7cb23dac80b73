"""Fault injection on the echo server: a storm of connections, some dropped.

A thousand clients hold their connections open at once, each sends
several messages of random sizes, and a tenth of them vanish at a random
point mid-transfer (half after setting SO_LINGER 0, which resets the
connection at once, half with a plain close). Every other client must get
every byte back; the server must go on serving (an error escaping one of
its connections would end ``serve_tcp`` and fail the test); and nothing
may leak: no task, no descriptor.
"""

from __future__ import annotations

import importlib.util
import os
import random
import resource
import socket as stdsocket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

import curcor
from curcor import net

CLIENTS = 1000
DROPPED = CLIENTS // 10
# Descriptors the storm needs: both ends of every connection, and room for
# the runtime, pytest and the interpreter.
FDS_NEEDED = 2 * CLIENTS + 500
# The first seed this test ran with; --curcor-seed N replaces it.
DEFAULT_SEED = 20240611

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "echo_server.py"


def _example_echo():
    """The handler of examples/echo_server.py, loaded from its file."""
    spec = importlib.util.spec_from_file_location("_echo_server_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.echo


@pytest.fixture
def enough_descriptors():
    """Raise the soft open-file limit to the hard one if it is too low for
    the storm (restored afterwards); skip when even the hard one is."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts descriptors in /proc/self/fd, which this OS lacks")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FDS_NEEDED:
        if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
            pytest.skip(
                f"needs {FDS_NEEDED} open files, the hard limit is {hard} "
                f"(raise it: ulimit -Hn {FDS_NEEDED})"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    value = request.config.getoption("--curcor-seed")
    return DEFAULT_SEED if value is None else int(value)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Plan:
    """What one client does, drawn from the seeded generator."""

    messages: list[bytes]
    drop: str | None = None  # None, "write" (stop sending) or "read" (stop reading)
    cut: int = 0  # bytes sent (drop="write") or received (drop="read") first
    reset: bool = False  # close with SO_LINGER 0: an RST instead of a FIN


def _message_size(rng: random.Random) -> int:
    # Mostly small; one in twenty of 100-300 KB, which take the server
    # several reads and sends. Arbitrary; the mean is about 14 KB.
    if rng.random() < 0.05:
        return rng.randint(100_000, 300_000)
    return rng.randint(1, 8_000)


def _plans(seed: int) -> list[Plan]:
    rng = random.Random(seed)
    plans = []
    for _ in range(CLIENTS):
        sizes = [_message_size(rng) for _ in range(rng.randint(2, 6))]
        plans.append(Plan([rng.randbytes(n) for n in sizes]))
    for i, victim in enumerate(rng.sample(range(CLIENTS), DROPPED)):
        plan = plans[victim]
        plan.drop = rng.choice(("write", "read"))
        plan.cut = rng.randint(1, sum(map(len, plan.messages)) - 1)
        plan.reset = i % 2 == 0
    return plans


async def _write_all(s: net.Stream, messages: list[bytes], limit: int) -> None:
    """Send the messages, one drain each; stop after ``limit`` bytes."""
    for message in messages:
        piece = message[:limit]
        s.write(piece)
        await s.drain()
        limit -= len(piece)
        if limit <= 0:
            return


async def _exchange(s: net.Stream, plan: Plan, who: str) -> None:
    """Send every message while reading each echo back; check every byte."""
    async with curcor.TaskGroup() as tg:
        tg.go(_write_all(s, plan.messages, sum(map(len, plan.messages))))
        for k, message in enumerate(plan.messages):
            echoed = await s.read_exactly(len(message))
            if echoed != message:
                pairs = zip(echoed, message, strict=True)
                at = next(i for i, (a, b) in enumerate(pairs) if a != b)
                raise AssertionError(f"{who}: message {k} differs at byte {at}")


async def _drop_midway(s: net.Stream, plan: Plan) -> None:
    """Send and read until the cut, then close abruptly."""
    try:
        async with curcor.TaskGroup() as tg:
            if plan.drop == "write":
                await _write_all(s, plan.messages, plan.cut)
            else:
                tg.go(_write_all(s, plan.messages, sum(map(len, plan.messages))))
                got = 0
                while got < plan.cut:
                    got += len(await s.read(plan.cut - got))
            if plan.reset:
                s.socket.setsockopt(
                    stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            s.close()  # the writer, if still sending, is woken and ends
    except* OSError:
        pass  # ClosedResourceError, a reset, EPIPE: this client is gone anyway


@pytest.mark.curcor(clock="real", maxprocs=2)
@pytest.mark.stress
@pytest.mark.timeout(60)
async def test_a_storm_of_1000_connections_with_a_tenth_dropped_midway(
    enough_descriptors, seed
):
    echo = _example_echo()
    plans = _plans(seed)
    done = {"ok": 0, "dropped": 0}
    lock = threading.Lock()  # clients finish on both workers

    async def check_serving(port: int) -> None:
        async with await net.dial_tcp("127.0.0.1", port) as s:
            s.write(b"still serving\n")
            await s.drain()
            assert await s.read_until(b"\n") == b"still serving\n"

    async def client(port: int, i: int, connected: curcor.WaitGroup) -> None:
        plan = plans[i]
        s = await net.dial_tcp("127.0.0.1", port)
        try:
            connected.done()
            await connected.wait()  # all connections are open at once
            if plan.drop is None:
                await _exchange(s, plan, f"client {i} (seed {seed})")
                outcome = "ok"
            else:
                await _drop_midway(s, plan)
                outcome = "dropped"
            with lock:
                done[outcome] += 1
        finally:
            s.close()

    fds_at_start = _open_fds()
    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(
                echo, backlog=CLIENTS, task_status=task_status
            )
        )
        # Counted before any connection: the server closes its end of one
        # only after it has read the client's close, some time later.
        fds_before = _open_fds()
        tasks_before = curcor.stats().tasks_live
        await check_serving(port)

        # The storm, bounded: a hang fails the test instead of stalling it.
        with curcor.timeout(30):
            connected = curcor.WaitGroup()
            connected.add(CLIENTS)
            async with curcor.TaskGroup() as clients:
                for i in range(CLIENTS):
                    clients.go(client(port, i, connected))
            assert done == {"ok": CLIENTS - DROPPED, "dropped": DROPPED}
            await check_serving(port)

        # The server closes its ends as it notices each close; give it a
        # moment (bounded) to come back to where it was before the storm.
        with curcor.move_on_after(5):
            while (_open_fds(), curcor.stats().tasks_live) != (
                fds_before,
                tasks_before,
            ):
                await curcor.sleep(0.01)
        assert _open_fds() == fds_before, "descriptors leaked"
        assert curcor.stats().tasks_live == tasks_before, "tasks leaked"
        tg.cancel_scope.cancel()
    assert _open_fds() == fds_at_start, "descriptors leaked by the server"


async def test_a_tls_client_that_never_handshakes_is_dropped_after_the_limit(
    monkeypatch,
):
    """A slow-loris hole: serve_tcp(ssl=...) waited for the handshake for
    ever, before the handler (which could not bound it) was called."""
    import socket
    import ssl

    import trustme

    from curcor.net import stream as stream_module

    monkeypatch.setattr(stream_module, "TLS_HANDSHAKE_TIMEOUT", 5.0)
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    handled = []

    async def handler(stream):
        handled.append(stream)

    async with curcor.TaskGroup() as tg:
        port = await tg.start(
            lambda task_status: net.serve_tcp(handler, ssl=ctx, task_status=task_status)
        )
        raw = net.Socket(socket.socket())
        await raw.connect(("127.0.0.1", port))  # and never says a word
        with curcor.move_on_after(60):
            assert await raw.recv(10) == b""  # the server hung up
        assert curcor.now() < 60 and not handled
        raw.close()
        tg.cancel_scope.cancel()


async def test_dial_tcp_keeps_the_errno_of_the_last_failure(monkeypatch):
    import errno

    async def unreachable(self, address):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(net.Socket, "connect", unreachable)
    with pytest.raises(OSError) as info:
        await net.dial_tcp("127.0.0.1", 9)
    assert info.value.errno == errno.ENETUNREACH
    assert not isinstance(info.value, ConnectionRefusedError)


async def test_a_unix_socket_path_too_long_names_the_limit(tmp_path):
    long = str(tmp_path / ("x" * 120))
    with pytest.raises(ValueError, match="the limit is 107"):
        await net.listen_unix(long)
    with pytest.raises(ValueError, match="the limit is 107"):
        await net.dial_unix(long)
    listener = await net.listen_unix(str(tmp_path / "s"))
    with pytest.raises(TypeError, match="TCP listeners"):
        print(listener.port)
    listener.close()
